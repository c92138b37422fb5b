//! Batch mode against a real redis-server: KEDA's ScaledJob calls (`GetMetricSpec`,
//! `GetMetrics`, `IsActive`) for list and stream queues, and the faults KEDA must see as
//! `UNAVAILABLE` (never as an empty queue) while other triggers keep working.
#![cfg(feature = "sim")]

mod common;

use common::{Harness, redis_server::RedisServer, settings, so};
use llm_scaler::{proto::ScaledObjectRef, serve::grpc::BATCH_METRIC_NAME};
use redis::AsyncCommands;
use tonic::Code;

fn batch(name: &str, kv: &[(&str, String)]) -> ScaledObjectRef {
    let mut meta = vec![("mode", "batch".to_string())];
    meta.extend(kv.iter().cloned());
    so("jobs", name, &meta)
}

fn unavailable_saying(r: &Result<f64, tonic::Status>, needle: &str) -> bool {
    matches!(r, Err(s) if s.code() == Code::Unavailable && s.message().contains(needle))
}

#[tokio::test]
async fn a_list_s_length_is_the_work_against_the_work_one_job_takes_and_an_empty_list_is_inactive() {
    let redis = RedisServer::start();
    let mut c = redis.conn().await;
    let _: () = c.rpush("embed-jobs", (0..7).collect::<Vec<i32>>()).await.unwrap();
    let mut h = Harness::start(settings(100)).await;
    let t = batch("embed", &[("address", redis.address()), ("listName", "embed-jobs".into()), ("targetSize", "2".into())]);

    let spec = h.client.get_metric_spec(t.clone()).await.expect("spec").into_inner().metric_specs;
    assert_eq!(spec.len(), 1);
    assert_eq!((spec[0].metric_name.as_str(), spec[0].target_size_float), (BATCH_METRIC_NAME, 2.0), "AverageValue = items per Job");
    assert_eq!(h.wait_batch_work(&t, |r| r.is_ok()).await.unwrap(), 7.0);
    assert!(h.client.is_active(t.clone()).await.unwrap().into_inner().result);

    let _: () = c.del("embed-jobs").await.unwrap();
    h.wait_batch_work(&t, |r| r.as_ref().is_ok_and(|w| *w == 0.0)).await.unwrap();
    assert!(!h.client.is_active(t.clone()).await.unwrap().into_inner().result, "nothing waits: not active");

    // A set counted by SCARD, as KEDA's scalers count non-list keys.
    let _: () = c.sadd("docs", &["a", "b", "c"]).await.unwrap();
    let s = batch("docs", &[("address", redis.address()), ("listName", "docs".into()), ("dataType", "set".into())]);
    assert_eq!(h.wait_batch_work(&s, |r| r.is_ok()).await.unwrap(), 3.0);
    h.stop().await;
}

#[tokio::test]
async fn a_stream_s_waiting_work_is_its_lag_plus_entries_whose_consumer_went_quiet_and_outstanding_adds_claimed_ones() {
    let redis = RedisServer::start();
    let mut c = redis.conn().await;
    let _: () = redis::cmd("XGROUP").arg(&["CREATE", "evals", "workers", "$", "MKSTREAM"]).query_async(&mut c).await.unwrap();
    for i in 0..10 {
        let _: String = c.xadd("evals", "*", &[("item", i)]).await.unwrap();
    }
    // A worker claims 4 entries and goes quiet (a preempted Spot pod).
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "workers", "spot-pod-1", "COUNT", "4", "STREAMS", "evals", ">"])
        .query_async(&mut c)
        .await
        .unwrap();
    let mut h = Harness::start(settings(100)).await;
    let stream = |name: &str, count: &str| {
        batch(
            name,
            &[
                ("address", redis.address()),
                ("stream", "evals".into()),
                ("consumerGroup", "workers".into()),
                ("workCount", count.into()),
                ("claimTimeout", "1500ms".into()),
            ],
        )
    };
    let (waiting, outstanding) = (stream("evals-accurate", "waiting"), stream("evals-default", "outstanding"));
    assert_eq!(h.wait_batch_work(&waiting, |r| r.is_ok()).await.unwrap(), 6.0, "lag 6; the 4 claimed are being worked on");
    assert_eq!(h.wait_batch_work(&outstanding, |r| r.is_ok()).await.unwrap(), 10.0, "lag 6 + 4 pending");
    // Past the claim timeout the 4 are work to redo.
    assert_eq!(h.wait_batch_work(&waiting, |r| r.as_ref().is_ok_and(|w| *w == 10.0)).await.unwrap(), 10.0);
    // Two are acknowledged after all (the worker came back): 8 left either way.
    let ids: redis::Value = redis::cmd("XRANGE").arg(&["evals", "-", "+", "COUNT", "2"]).query_async(&mut c).await.unwrap();
    let redis::Value::Array(entries) = ids else { panic!("XRANGE: {ids:?}") };
    for e in entries {
        let redis::Value::Array(parts) = e else { panic!("entry") };
        let id: String = redis::from_redis_value(parts[0].clone()).unwrap();
        let _: i64 = c.xack("evals", "workers", &[id]).await.unwrap();
    }
    h.wait_batch_work(&waiting, |r| r.as_ref().is_ok_and(|w| *w == 8.0)).await.unwrap();
    h.wait_batch_work(&outstanding, |r| r.as_ref().is_ok_and(|w| *w == 8.0)).await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn every_queue_fault_is_unavailable_naming_its_cause_and_leaves_other_triggers_working() {
    let redis = RedisServer::start();
    let locked = RedisServer::with_password("right-password");
    let mut c = redis.conn().await;
    let _: () = c.rpush("ok", &[1, 2]).await.unwrap();
    let _: () = c.set("a-string", "x").await.unwrap();
    let _: () = redis::cmd("XGROUP").arg(&["CREATE", "s", "other-group", "$", "MKSTREAM"]).query_async(&mut c).await.unwrap();
    let mut h = Harness::start(settings(100)).await;
    let healthy = batch("healthy", &[("address", redis.address()), ("listName", "ok".into())]);
    let nothing_there = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases = [
        (
            batch("refused", &[("address", format!("127.0.0.1:{nothing_there}")), ("listName", "q".into())]),
            format!("127.0.0.1:{nothing_there}"),
        ),
        (
            batch("wrong-pass", &[("address", locked.address()), ("listName", "q".into()), ("passwordFromEnv", "wrong".into())]),
            "Password authentication failed".to_string(),
        ),
        (batch("no-pass", &[("address", locked.address()), ("listName", "q".into())]), "NOAUTH".to_string()),
        (batch("wrong-type", &[("address", redis.address()), ("listName", "a-string".into())]), "holds another type".to_string()),
        (
            batch("no-group", &[("address", redis.address()), ("stream", "s".into()), ("consumerGroup", "workers".into())]),
            "has no consumer group \"workers\"".to_string(),
        ),
        (
            batch("no-stream", &[("address", redis.address()), ("stream", "absent".into()), ("consumerGroup", "g".into())]),
            "stream \"absent\" does not exist".to_string(),
        ),
    ];
    for (t, needle) in &cases {
        let r = h.wait_batch_work(t, |r| unavailable_saying(r, needle)).await;
        assert!(r.is_err());
        let active = h.client.is_active(t.clone()).await;
        assert!(matches!(&active, Err(s) if s.code() == Code::Unavailable), "IsActive too: {active:?}");
    }
    assert_eq!(h.wait_batch_work(&healthy, |r| r.is_ok()).await.unwrap(), 2.0, "the healthy trigger is untouched");

    let bad = batch("bad", &[("address", redis.address()), ("listName", "q".into()), ("targetSize", "-1".into())]);
    let err = h.client.get_metric_spec(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("targetSize"), "{}", err.message());
    h.stop().await;
}

#[tokio::test]
async fn a_redis_restart_is_unavailable_while_it_is_down_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let mut c = redis.conn().await;
    let _: () = c.rpush("q", &[1, 2, 3]).await.unwrap();
    let mut h = Harness::start(settings(100)).await;
    let t = batch("restart", &[("address", redis.address()), ("listName", "q".into())]);
    assert_eq!(h.wait_batch_work(&t, |r| r.is_ok()).await.unwrap(), 3.0);
    redis.stop();
    let down = h.wait_batch_work(&t, |r| r.is_err()).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    redis.restart();
    let mut c = redis.conn().await;
    let _: () = c.rpush("q", &[1, 2, 3, 4, 5]).await.unwrap();
    assert_eq!(h.wait_batch_work(&t, |r| r.as_ref().is_ok_and(|w| *w == 5.0)).await.unwrap(), 5.0, "the same connection recovered");
    h.stop().await;
}

/// The example worker (`scaledobjects/worker/stream_worker.py`) against `redis`.
fn worker(redis: &RedisServer, args: &[&str]) -> std::process::Child {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scaledobjects/worker/stream_worker.py");
    std::process::Command::new("python3")
        .arg(script)
        .args(["--stream", "backfill", "--group", "workers"])
        .args(args)
        .env("REDIS_ADDRESS", redis.address())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the example worker")
}

#[tokio::test]
async fn a_preempted_worker_s_entries_come_back_as_waiting_work_and_the_next_worker_redoes_them() {
    let redis = RedisServer::start();
    let mut c = redis.conn().await;
    let _: () = redis::cmd("XGROUP").arg(&["CREATE", "backfill", "workers", "$", "MKSTREAM"]).query_async(&mut c).await.unwrap();
    for i in 0..6 {
        let _: String = c.xadd("backfill", "*", &[("doc", i)]).await.unwrap();
    }
    let mut h = Harness::start(settings(100)).await;
    let t = batch(
        "backfill",
        &[("address", redis.address()), ("stream", "backfill".into()), ("consumerGroup", "workers".into()), ("claimTimeout", "1s".into())],
    );
    assert_eq!(h.wait_batch_work(&t, |r| r.is_ok()).await.unwrap(), 6.0);

    // A Spot worker takes 3 entries and is preempted mid-work (SIGKILL: no acknowledgement).
    let mut spot = worker(&redis, &["--consumer", "spot-1", "--batch", "3", "--work-seconds", "60"]);
    h.wait_batch_work(&t, |r| r.as_ref().is_ok_and(|w| *w == 3.0)).await.expect("3 left while the 3 taken are in progress");
    spot.kill().unwrap();
    spot.wait().unwrap();
    // Past the claim timeout its 3 are waiting work again: KEDA (accurate) starts a Job for them.
    h.wait_batch_work(&t, |r| r.as_ref().is_ok_and(|w| *w == 6.0)).await.expect("the preempted entries count again");

    // The next worker claims them (XAUTOCLAIM), does all six and exits when the stream is empty.
    let next = worker(&redis, &["--consumer", "spot-2", "--claim-timeout", "1", "--batch", "2", "--idle-exit", "1"]);
    let out = tokio::task::spawn_blocking(move || next.wait_with_output().unwrap()).await.unwrap();
    assert!(out.status.success(), "the worker exits cleanly");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "done 6", "3 redone + 3 new, each acknowledged once");
    h.wait_batch_work(&t, |r| r.as_ref().is_ok_and(|w| *w == 0.0)).await.unwrap();
    assert!(!h.client.is_active(t.clone()).await.unwrap().into_inner().result, "all done: no Job wanted");
    let pending: redis::Value = redis::cmd("XPENDING").arg(&["backfill", "workers"]).query_async(&mut c).await.unwrap();
    let redis::Value::Array(summary) = pending else { panic!("{pending:?}") };
    assert_eq!(summary[0], redis::Value::Int(0), "nothing left unacknowledged");
    h.stop().await;
}

#[tokio::test]
async fn a_tls_redis_is_read_when_its_ca_is_trusted_and_unavailable_naming_the_certificate_when_not() {
    let redis = RedisServer::with_tls();
    let mut c = redis.conn().await;
    let _: () = c.rpush("evals", vec![1, 2, 3]).await.unwrap();
    let ca = std::env::temp_dir().join(format!("llm-scaler-redis-ca-{}-{}.pem", std::process::id(), redis.port));
    std::fs::write(&ca, redis.ca_pem()).unwrap();
    let list = |extra: &[(&str, &str)]| {
        let mut kv = vec![("address", redis.address()), ("listName", "evals".to_string())];
        kv.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        batch("evals", &kv)
    };

    // Trusting the server's CA (--redis-ca-file), the list is read over TLS.
    let mut trusted = settings(100);
    trusted.redis_ca_file = Some(ca.clone());
    let mut h = Harness::start(trusted).await;
    assert_eq!(h.wait_batch_work(&list(&[("redisTLS", "true")]), |r| r.is_ok()).await.unwrap(), 3.0);
    h.stop().await;

    // With the system's roots only, the certificate is refused, and KEDA hears why.
    let mut h = Harness::start(settings(100)).await;
    let read_failed = |r: &Result<f64, tonic::Status>| r.as_ref().is_err_and(|s| !s.message().contains("first read has not finished"));
    let r = h.wait_batch_work(&list(&[("redisTLS", "true")]), read_failed).await;
    assert!(matches!(&r, Err(s) if s.code() == Code::Unavailable && s.message().to_lowercase().contains("certificate")), "{r:?}");
    // redisUnsafeSsl accepts it; plaintext to a TLS port is no count either.
    assert_eq!(h.wait_batch_work(&list(&[("redisTLS", "true"), ("redisUnsafeSsl", "true")]), |r| r.is_ok()).await.unwrap(), 3.0);
    let plain = h.wait_batch_work(&list(&[]), read_failed).await;
    assert!(matches!(&plain, Err(s) if s.code() == Code::Unavailable), "{plain:?}");
    h.stop().await;
    let _ = std::fs::remove_file(ca);
}
