use super::*;

/// The decisions API's JSON for two fleets and a batch queue, trimmed to what it always has.
fn listing() -> Listing {
    serde_json::from_value(serde_json::json!({
        "scaledobjects": [
            {
                "namespace": "ai", "name": "llama", "fresh": true, "age_seconds": 3.4, "last_error": null,
                "spec": {"ignored": true}, "history": [],
                "latest": {
                    "desired_replicas": 6, "current_replicas": 4, "dominant": "queue_depth", "outcome": "scale_up",
                    "reason": "scale up 4 -> 6: queue_depth 34 / 10 per replica = 3.40 replicas x 1.5 peak = 5.10; 1 ready pod(s) without queue_depth data counted as zero load (scale-up)",
                    "demand": 3.4
                },
                "cost": {"state": "known", "gpus": 8, "gpu_hour_price": 4.0, "dollars_per_hour": 32.0, "dollars_total": 1.5,
                         "tokens_total": 1000.0, "dollars_per_1k_tokens": 0.0123, "budget_dollars_per_hour": null}
            },
            {
                "namespace": "ai", "name": "down", "fresh": false, "age_seconds": 190.0,
                "last_error": "pod ai/down-0: connection refused",
                "latest": {"desired_replicas": 3, "current_replicas": 3, "dominant": null, "outcome": "hold", "reason": "hold at 3"},
                "cost": {"state": "unknown", "reason": "pod 127.0.0.1:9 has no known GPUs: set gpusPerPod"}
            },
            {"namespace": "a", "name": "new", "fresh": false, "age_seconds": null, "last_error": null, "latest": null, "cost": null}
        ],
        "scaledjobs": [
            {"namespace": "batch", "name": "embed", "fresh": true, "age_seconds": 1.0, "last_error": null, "dollars_total": 0.5,
             "decision": {"work": 1200.0, "jobs_wanted": 12, "jobs": 8, "bound": "budget", "cost_per_hour": 9.6,
                          "reason": "8 Jobs: budget $10/h at $1.20/h each"}}
        ]
    }))
    .expect("the API's shape")
}

#[test]
fn the_table_has_one_aligned_row_per_scaledobject_sorted_by_namespace_and_name() {
    let table = Status::from(listing()).table(false);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE   SCALEDOBJECT   REPLICAS   SIGNAL"), "{table}");
    assert!(lines[1].starts_with("a           new "), "{table}");
    assert!(lines[2].starts_with("ai          down "), "{table}");
    assert!(lines[3].starts_with("ai          llama "), "{table}");
    // Every column starts at the same offset on every row.
    let at = |l: &str, s: &str| l.find(s).unwrap_or_else(|| panic!("{s} in {l}"));
    assert_eq!(at(lines[0], "REPLICAS"), at(lines[3], "4/6"), "{table}");
    assert_eq!(at(lines[0], "SIGNAL"), at(lines[3], "queue_depth"), "{table}");
    assert_eq!(at(lines[0], "COST/H"), at(lines[3], "$32.00"), "{table}");
    assert_eq!(at(lines[0], "AGE"), at(lines[3], "3s"), "{table}");
    assert!(lines.iter().all(|l| l == &l.trim_end()), "no trailing blanks:\n{table}");
}

#[test]
fn a_long_reason_is_cut_in_the_table_and_whole_in_the_wide_one() {
    let status = Status::from(listing());
    let narrow = status.table(false);
    let llama = narrow.lines().find(|l| l.contains("llama")).unwrap();
    assert!(llama.ends_with("..."), "{llama}");
    assert!(llama.contains("scale up 4 -> 6: queue_depth 34"), "{llama}");
    let wide = status.table(true);
    let llama = wide.lines().find(|l| l.contains("llama")).unwrap();
    assert!(llama.ends_with("counted as zero load (scale-up)"), "{llama}");
    assert!(llama.contains("scale_up") && llama.contains("$0.0123"), "{llama}");
    let head = wide.lines().next().unwrap();
    assert!(head.contains("AGE") && head.contains("OUTCOME") && head.contains("$/1K TOKENS") && head.ends_with("REASON"), "{wide}");
}

#[test]
fn a_stale_decision_shows_unavailable_with_the_last_problem_never_as_deciding() {
    let status = Status::from(listing());
    let down = status.scaledobjects.iter().find(|o| o.name == "down").unwrap();
    assert!(
        matches!(&down.answer, Answer::Unavailable { stale: Some(r), reason } if r.desired == 3 && reason.contains("connection refused"))
    );
    let table = status.table(false);
    let line = table.lines().find(|l| l.contains("down")).unwrap();
    assert!(line.contains("3/3") && line.contains("3m10s (stale)"), "{line}");
    assert!(line.contains("unavailable: pod ai/down-0: connection refused"), "{line}");
    assert!(line.contains("unknown"), "an unknown cost is not $0: {line}");
    assert!(!line.contains("$0"), "{line}");
}

#[test]
fn a_target_without_a_decision_or_a_cost_yet_shows_dashes_not_zeros() {
    let table = Status::from(listing()).table(true);
    let line = table.lines().find(|l| l.contains(" new ")).unwrap();
    let cells: Vec<&str> = line.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["a", "new", "-", "-", "-", "-", "unavailable", "-", "unavailable: no decision yet"], "{line}");
}

#[test]
fn scaledjobs_get_their_own_table_after_a_blank_line() {
    let table = Status::from(listing()).table(false);
    let (_, jobs) = table.split_once("\n\n").expect("two tables");
    let lines: Vec<&str> = jobs.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE   SCALEDJOB   JOBS   WANTED   BOUND    COST/H   AGE   REASON"), "{jobs}");
    assert!(lines[1].starts_with("batch       embed       8      12       budget   $9.60    1s    8 Jobs"), "{jobs}");
}

#[test]
fn the_json_rows_say_which_state_each_answer_and_cost_is_in() {
    let v = serde_json::to_value(Status::from(listing())).unwrap();
    let llama = &v["scaledobjects"][0];
    assert_eq!(llama["answer"]["state"], "deciding");
    assert_eq!(llama["answer"]["desired"], 6);
    assert_eq!(llama["answer"]["signal"], "queue_depth");
    assert_eq!(llama["cost"]["state"], "known");
    assert_eq!(llama["cost"]["dollars_per_hour"], 32.0);
    assert_eq!(v["scaledobjects"][1]["answer"]["state"], "unavailable");
    assert_eq!(v["scaledobjects"][1]["cost"]["state"], "unknown");
    assert_eq!(v["scaledobjects"][2]["cost"]["state"], "not_yet");
    assert_eq!(v["scaledjobs"][0]["answer"]["planned"], 8);
}

#[test]
fn a_reason_is_cut_after_a_whole_word() {
    let reason = "scale up 4 -> 6: queue_depth 34 / 10 per replica = 3.40 replicas x 1.5 peak = 5.10";
    assert_eq!(cut(reason, 72), "scale up 4 -> 6: queue_depth 34 / 10 per replica = 3.40 replicas x...");
    assert_eq!(cut("short", 72), "short");
    assert_eq!(cut("abcdefghijklmnopqrstuvwxyz", 10), "abcdefg...", "one long word is cut inside it");
}

#[test]
fn ages_read_like_kubectl() {
    let cases = [(0.4, "0s"), (59.9, "59s"), (61.0, "1m1s"), (3_600.0, "1h0m"), (7_385.0, "2h3m"), (90_000.0, "1d1h")];
    for (s, want) in cases {
        assert_eq!(short_duration(s), want, "{s}");
    }
}

#[test]
fn an_address_is_host_port_or_an_http_url_and_anything_else_is_refused_naming_the_flag() {
    for ok in ["127.0.0.1:8080", "localhost:9000", "http://127.0.0.1:8080", "http://127.0.0.1:8080/scaler"] {
        Client::new(ok, DEFAULT_TIMEOUT).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let prefixed = Client::new("http://127.0.0.1:8080/scaler", DEFAULT_TIMEOUT).unwrap();
    assert_eq!(prefixed.base.join(&Scope::All.path()).unwrap().as_str(), "http://127.0.0.1:8080/scaler/api/v1/decisions");
    let one = Scope::One { namespace: "ai".into(), name: "llama".into() };
    assert_eq!(prefixed.base.join(&one.path()).unwrap().as_str(), "http://127.0.0.1:8080/scaler/api/v1/decisions/ai/llama");
    for (bad, says) in [
        ("https://127.0.0.1:8080", "plain http://"),
        ("http://", "host:port"),
        ("127.0.0.1:notaport", "host:port"),
        ("localhost", "no port"),
    ] {
        let e = Client::new(bad, DEFAULT_TIMEOUT).expect_err(bad).to_string();
        assert!(e.starts_with("--addr") && e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn a_cell_with_a_tab_newline_or_other_control_character_does_not_break_the_columns() {
    let text = align(&["A", "B"], &[vec!["x\ty".into(), "line\nbreak\u{1b}[2J".into()]]);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("x y   line break"), "{text}");
}

#[test]
fn a_namespace_or_name_kubernetes_would_refuse_is_refused_before_any_request() {
    assert_eq!(Scope::new(None, None).unwrap(), Scope::All);
    assert_eq!(Scope::new(Some("ai".into()), None).unwrap(), Scope::Namespace("ai".into()));
    assert_eq!(
        Scope::new(Some("ai".into()), Some("llama.v2".into())).unwrap(),
        Scope::One { namespace: "ai".into(), name: "llama.v2".into() }
    );
    for (ns, name, says) in [
        (Some("AI"), None, "--namespace \"AI\": expected a namespace name"),
        (Some("ai"), Some("x/../y"), "NAME \"x/../y\": expected a ScaledObject or ScaledJob name"),
        (Some("ai?x=1"), None, "--namespace"),
        (None, Some("llama"), "expected a --namespace with it"),
    ] {
        let e = Scope::new(ns.map(Into::into), name.map(Into::into)).expect_err(says).to_string();
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn watch_compares_rows_without_what_moves_every_tick() {
    let a = Status::from(listing());
    let mut b = a.clone();
    b.scaledobjects[0].age_seconds = Some(99.0);
    if let Answer::Deciding(d) = &mut b.scaledobjects[0].answer {
        d.reason = "scale up 4 -> 6: queue_depth 35 / 10 per replica".into();
    }
    if let Cost::Known { dollars_per_1k_tokens, .. } = &mut b.scaledobjects[0].cost {
        *dollars_per_1k_tokens = Some(0.02);
    }
    if let Answer::Deciding(d) = &mut b.scaledjobs[0].answer {
        d.work = Some(1199.0);
    }
    assert_ne!(a, b);
    assert_eq!(a.material(), b.material());
    let mut c = a.clone();
    if let Answer::Deciding(d) = &mut c.scaledobjects[0].answer {
        d.desired = 7;
    }
    assert_ne!(a.material(), c.material(), "a new desired count is news");
    let compact = a.render(Output::Json, true);
    assert_eq!(compact.lines().count(), 1, "{compact}");
    serde_json::from_str::<serde_json::Value>(&compact).unwrap();
}

#[test]
fn a_number_the_server_could_not_write_or_a_cost_state_from_a_newer_server_still_reads() {
    let v = serde_json::json!({
        "scaledobjects": [{"namespace": "ai", "name": "x", "fresh": true, "age_seconds": 1.0, "last_error": null,
            "latest": {"desired_replicas": 2, "current_replicas": 2, "dominant": null, "outcome": "hold", "reason": "hold"},
            "cost": {"state": "estimated", "dollars_per_hour": 3.0}}],
        "scaledjobs": [{"namespace": "b", "name": "j", "fresh": true, "age_seconds": 1.0, "last_error": null,
            "decision": {"work": null, "jobs_wanted": 1, "jobs": 1, "bound": "queue", "cost_per_hour": 1.8, "reason": "r"}}]
    });
    let status = Status::from(serde_json::from_value::<Listing>(v).expect("reads"));
    assert!(matches!(status.scaledobjects[0].cost, Cost::Unknown { .. }));
    let table = status.table(true);
    assert!(table.lines().any(|l| l.starts_with("b ") && l.contains(" -   ")), "work unknown: -\n{table}");
}

/// An edited ScaledObject as the API lists it: the new metadata's target (asked 5 s ago) and the
/// old one's (asked 130 s ago, stopping in 470 s), plus a ScaledObject with two triggers whose
/// targets are both asked, and a lone target KEDA stopped asking about (deleted, not edited).
fn edited() -> Listing {
    let object = |name: &str, desired: u32, asked: f64, stops: Option<f64>| {
        serde_json::json!({
            "namespace": "ai", "name": name, "fresh": true, "age_seconds": 1.0, "last_error": null,
            "latest": {"desired_replicas": desired, "current_replicas": 4, "dominant": "queue_depth", "outcome": "hold", "reason": "hold at 4"},
            "cost": null, "asked_seconds_ago": asked, "stops_in_seconds": stops
        })
    };
    serde_json::from_value(serde_json::json!({
        "scaledobjects": [
            object("llama", 9, 130.0, Some(470.0)),
            object("llama", 4, 5.0, Some(595.0)),
            object("twin", 3, 4.0, Some(596.0)),
            object("twin", 5, 12.0, Some(588.0)),
            object("gone", 2, 200.0, Some(400.0)),
        ],
        "scaledjobs": [
            {"namespace": "batch", "name": "embed", "fresh": true, "age_seconds": 1.0, "last_error": null,
             "asked_seconds_ago": 61.0, "stops_in_seconds": null,
             "decision": {"work": 10.0, "jobs_wanted": 1, "jobs": 1, "bound": "queue", "cost_per_hour": 1.0, "reason": "old"}},
            {"namespace": "batch", "name": "embed", "fresh": true, "age_seconds": 1.0, "last_error": null,
             "asked_seconds_ago": 2.0, "stops_in_seconds": 598.0,
             "decision": {"work": 10.0, "jobs_wanted": 2, "jobs": 2, "bound": "queue", "cost_per_hour": 2.0, "reason": "new"}}
        ]
    }))
    .expect("the API's shape")
}

#[test]
fn an_edited_scaledobjects_old_target_is_marked_replaced_and_listed_after_the_live_one() {
    let status = Status::from(edited());
    let replaced: Vec<(&str, u32)> = status
        .scaledobjects
        .iter()
        .filter(|o| o.replaced.is_some())
        .map(|o| match &o.answer {
            Answer::Deciding(d) => (o.name.as_str(), d.desired),
            other => panic!("{other:?}"),
        })
        .collect();
    // Only the old llama: both of twin's triggers are asked, and gone has no live sibling.
    assert_eq!(replaced, [("llama", 9)]);
    let table = status.table(false);
    let llama: Vec<&str> = table.lines().filter(|l| l.contains(" llama ")).collect();
    assert!(llama[0].contains("4/4") && llama[0].ends_with("hold at 4"), "the live target first:\n{table}");
    assert!(llama[1].contains("4/9"), "{table}");
    assert!(llama[1].ends_with("replaced by new metadata: last asked 2m10s ago, stops in 7m50s"), "{table}");
    let jobs = table.split_once("\n\n").expect("two tables").1;
    let embed: Vec<&str> = jobs.lines().filter(|l| l.contains(" embed ")).collect();
    assert!(embed[0].ends_with("new") && embed[1].ends_with("last asked 1m1s ago, kept by a push stream"), "{jobs}");
    let v = serde_json::to_value(&status).unwrap();
    assert_eq!(v["scaledobjects"][0]["replaced"], serde_json::json!({"asked_seconds_ago": 130.0, "stops_in_seconds": 470.0}));
    assert!(v["scaledobjects"][1]["replaced"].is_null());
}

#[test]
fn watch_reprints_when_a_target_becomes_replaced_but_not_as_its_countdown_moves() {
    let a = Status::from(edited());
    let mut b = a.clone();
    let old = b.scaledobjects.iter_mut().find(|o| o.replaced.is_some()).unwrap();
    old.replaced = Some(Replaced { asked_seconds_ago: 140.0, stops_in_seconds: Some(460.0) });
    assert_eq!(a.material(), b.material());
    let mut c = a.clone();
    c.scaledobjects.iter_mut().for_each(|o| o.replaced = None);
    assert_ne!(a.material(), c.material());
}

#[test]
fn a_server_without_the_presence_fields_never_shows_a_row_as_replaced() {
    let status = Status::from(listing());
    assert!(status.scaledobjects.iter().all(|o| o.replaced.is_none()) && status.scaledjobs.iter().all(|j| j.replaced.is_none()));
}
