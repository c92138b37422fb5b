//! GPU activity per pod from a dcgm-exporter response.
//!
//! dcgm-exporter runs one pod per GPU node and labels each GPU's series with the pod holding it.
//! We keep only the pods of the fleet being scaled, average the chosen field over each pod's GPUs
//! (a tensor-parallel pod owns several), and normalise units: `DCGM_FI_DEV_GPU_UTIL` is a percent,
//! every `PROF_*` field and every 4.9+ `*_RATIO` name is a 0..1 ratio. Label spellings from all
//! releases are accepted (`pod`/`pod_name`, `namespace`/`pod_namespace`).

use serde::Serialize;

use crate::read::exposition::{Sample, Visitor};

/// Per-pod GPU activity found in one dcgm-exporter response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuActivity {
    /// `(pod name, sum of the field over its GPUs as 0..1, number of GPUs)`.
    pods: Vec<(String, f64, u32)>,
}

impl GpuActivity {
    /// Mean activity 0..1 of `pod`'s GPUs, if this response covered it.
    pub fn mean(&self, pod: &str) -> Option<f64> {
        self.pods.iter().find(|(p, _, _)| p == pod).map(|(_, sum, n)| sum / f64::from(*n))
    }
}

/// Which dcgm-exporter field stands for "GPU utilisation".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuField {
    /// `DCGM_FI_DEV_GPU_UTIL` (percent) / `DCGM_FI_DEV_GPU_UTIL_RATIO`.
    GpuUtil,
    /// `DCGM_FI_PROF_GR_ENGINE_ACTIVE` / `DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO`.
    GrEngineActive,
    /// `DCGM_FI_PROF_DRAM_ACTIVE` / `DCGM_FI_PROF_DRAM_UTIL_RATIO`: decode saturation.
    DramActive,
}

impl GpuField {
    /// Reads the `gpuField` metadata value.
    pub fn from_metadata(s: &str) -> Option<Self> {
        Some(match s {
            "gpuUtil" => Self::GpuUtil,
            "grEngineActive" => Self::GrEngineActive,
            "dramActive" => Self::DramActive,
            _ => return None,
        })
    }
}

/// The family names of a field: `(name, divisor to reach 0..1)`, classic names first.
fn families(field: GpuField) -> [(&'static str, f64); 2] {
    match field {
        GpuField::GpuUtil => [("DCGM_FI_DEV_GPU_UTIL", 100.0), ("DCGM_FI_DEV_GPU_UTIL_RATIO", 1.0)],
        GpuField::GrEngineActive => [("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 1.0), ("DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO", 1.0)],
        GpuField::DramActive => [("DCGM_FI_PROF_DRAM_ACTIVE", 1.0), ("DCGM_FI_PROF_DRAM_UTIL_RATIO", 1.0)],
    }
}

/// Streams a dcgm-exporter body, keeping the GPUs of the wanted pods.
#[derive(Debug)]
pub struct DcgmExtractor<'a> {
    families: [(&'static str, f64); 2],
    namespace: &'a str,
    wanted: &'a [&'a str],
    out: GpuActivity,
    seen_family: bool,
}

impl<'a> DcgmExtractor<'a> {
    /// Reads `field` for the pods named in `wanted` (all in `namespace`).
    pub fn new(field: GpuField, namespace: &'a str, wanted: &'a [&'a str]) -> Self {
        DcgmExtractor { families: families(field), namespace, wanted, out: GpuActivity::default(), seen_family: false }
    }

    /// The activity found; an error when the field is absent altogether (wrong endpoint or a
    /// field the exporter was not configured to collect), so it is never read as idle.
    pub fn finish(self) -> Result<GpuActivity, String> {
        if !self.seen_family {
            return Err(format!("no {} or {} series in the response", self.families[0].0, self.families[1].0));
        }
        Ok(self.out)
    }
}

impl Visitor for DcgmExtractor<'_> {
    fn wants(&mut self, name: &str) -> bool {
        self.families.iter().any(|(f, _)| *f == name)
    }

    fn sample(&mut self, s: &Sample<'_>) {
        self.seen_family = true;
        let Some(&(_, divisor)) = self.families.iter().find(|(f, _)| *f == s.name) else { return };
        if !s.value.is_finite() {
            return;
        }
        let Some(pod) = s.label("pod").or_else(|| s.label("pod_name")) else { return };
        let ns = s.label("namespace").or_else(|| s.label("pod_namespace"));
        if ns.is_some_and(|ns| !ns.eq_unescaped(self.namespace)) {
            return;
        }
        let Some(&name) = self.wanted.iter().find(|w| pod.eq_unescaped(w)) else { return };
        let v = (s.value / divisor).clamp(0.0, 1.0);
        match self.out.pods.iter_mut().find(|(p, _, _)| p == name) {
            Some(e) => {
                e.1 += v;
                e.2 += 1;
            }
            None => self.out.pods.push((name.to_string(), v, 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::exposition;

    fn fixture(name: &str) -> String {
        let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn activity(body: &str, field: GpuField) -> Result<GpuActivity, String> {
        let wanted = ["vllm-llama-70b-7d9f8-abcde"];
        let mut x = DcgmExtractor::new(field, "ai-inference", &wanted);
        exposition::parse(body.as_bytes(), &mut x).map_err(|e| e.to_string())?;
        x.finish()
    }

    #[test]
    fn all_releases_agree_on_units() {
        let mut means = Vec::new();
        for f in ["dcgm-4.5.prom", "dcgm-4.9.prom", "dcgm-old-namespace.prom"] {
            let a = activity(&fixture(f), GpuField::GpuUtil).unwrap_or_else(|e| panic!("{f}: {e}"));
            let m = a.mean("vllm-llama-70b-7d9f8-abcde").unwrap_or_else(|| panic!("{f}: pod not found"));
            assert!((0.0..=1.0).contains(&m), "{f}: {m}");
            means.push(m);
        }
        assert!(means.windows(2).all(|w| (w[0] - w[1]).abs() < 0.02), "{means:?}");
    }

    #[test]
    fn percent_and_ratio_and_tensor_parallel_average() {
        let body = "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",namespace=\"ai-inference\",pod=\"vllm-llama-70b-7d9f8-abcde\"} 80\n\
                    DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",namespace=\"ai-inference\",pod=\"vllm-llama-70b-7d9f8-abcde\"} 40\n\
                    DCGM_FI_DEV_GPU_UTIL{gpu=\"2\",namespace=\"other\",pod=\"vllm-llama-70b-7d9f8-abcde\"} 0\n\
                    DCGM_FI_DEV_GPU_UTIL{gpu=\"3\"} 100\n";
        let a = activity(body, GpuField::GpuUtil).unwrap();
        assert!((a.mean("vllm-llama-70b-7d9f8-abcde").unwrap() - 0.6).abs() < 1e-9);
        let err = activity(body, GpuField::DramActive).unwrap_err();
        assert!(err.contains("DCGM_FI_PROF_DRAM_ACTIVE"), "{err}");
    }
}
