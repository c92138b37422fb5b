//! A fake dcgm-exporter's `/metrics` body for one GPU node.
//!
//! dcgm-exporter is a Go program with its own text template, not a
//! Prometheus client library, so its shape differs from vLLM's: labels in a
//! fixed order (`gpu, UUID, pci_bus_id, device, modelName, hostname,
//! DCGM_FI_DRIVER_VERSION, container, namespace, pod`), integers printed
//! plainly, doubles with six decimals, no timestamps. Label spellings, field
//! names and units vary by release; [`DcgmFlavor`] picks one so the
//! scraper's normalisation is exercised (see `docs/metrics.md`
//! section 2 and `tests/fixtures/dcgm-*.prom`).

use std::fmt::Write as _;

use super::push_label_value;

/// Which dcgm-exporter release (and flags) the node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DcgmFlavor {
    /// Up to 4.5.x: `Hostname` label, `DCGM_FI_DEV_GPU_UTIL` in percent.
    V4_5,
    /// 4.6 to 4.8: `hostname` label, otherwise as 4.5.
    #[default]
    V4_6,
    /// 4.9 (DCGM 4.7): `*_UTIL_RATIO` field names with 0-1 values and the
    /// `DCGM_FI_SYSTEM_DRIVER_VERSION` label.
    V4_9,
    /// An older release run with `--use-old-namespace`: `uuid`,
    /// `pod_name`/`pod_namespace`/`container_name`, `Hostname`, and empty pod
    /// labels (not absent ones) on GPUs no pod holds.
    OldNamespace,
}

/// The pod the kubelet's pod-resources API says holds a GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// `namespace` label (`pod_namespace` with the old names).
    pub namespace: String,
    /// `pod` label (`pod_name`).
    pub pod: String,
    /// `container` label (`container_name`).
    pub container: String,
}

/// One GPU's identity and current readings.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    /// `gpu` label, and the N of `device="nvidiaN"`.
    pub index: u32,
    /// `UUID` label, e.g. `GPU-7ad09335-...`.
    pub uuid: String,
    /// `pci_bus_id` label, e.g. `00000000:18:00.0`.
    pub pci_bus_id: String,
    /// `modelName` label, e.g. `NVIDIA H100 80GB HBM3`.
    pub model_name: String,
    /// Node name (`hostname` / `Hostname` label).
    pub hostname: String,
    /// `DCGM_FI_DRIVER_VERSION` (4.9: `DCGM_FI_SYSTEM_DRIVER_VERSION`) label.
    pub driver_version: String,
    /// `None`: no pod holds the GPU, so the series carry no pod labels.
    pub holder: Option<PodRef>,
    /// Duty cycle (any kernel running), 0..1; rendered as percent except in
    /// 4.9.
    pub util: f64,
    /// `DCGM_FI_PROF_GR_ENGINE_ACTIVE`, 0..1.
    pub gr_engine_active: f64,
    /// `DCGM_FI_PROF_DRAM_ACTIVE`, 0..1 (about 0.8 is the practical max).
    pub dram_active: f64,
    /// `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`, 0..1.
    pub tensor_active: f64,
    /// `DCGM_FI_DEV_FB_USED`, MiB.
    pub fb_used_mib: u64,
    /// `DCGM_FI_DEV_FB_FREE`, MiB.
    pub fb_free_mib: u64,
    /// `DCGM_FI_DEV_POWER_USAGE`, W.
    pub power_w: f64,
    /// Energy since boot in mJ (a counter: only grows).
    pub energy_mj: u64,
    /// `DCGM_FI_DEV_GPU_TEMP`, °C.
    pub gpu_temp_c: u32,
    /// `DCGM_FI_DEV_MEMORY_TEMP`, °C.
    pub memory_temp_c: u32,
    /// `DCGM_FI_DEV_SM_CLOCK`, MHz.
    pub sm_clock_mhz: u32,
    /// `DCGM_FI_DEV_MEM_CLOCK`, MHz.
    pub mem_clock_mhz: u32,
    /// `DCGM_FI_PROF_PCIE_TX_BYTES`, bytes/s.
    pub pcie_tx_bytes_per_s: u64,
    /// `DCGM_FI_PROF_PCIE_RX_BYTES`, bytes/s.
    pub pcie_rx_bytes_per_s: u64,
}

/// PCI buses of the eight GPUs of a typical HGX H100 board.
const H100_BUSES: [u8; 8] = [0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB];

/// Framebuffer of an H100 80GB as DCGM reports it (used + free), in MiB.
const H100_FB_MIB: u64 = 81_559;

impl Gpu {
    /// An idle, unheld `NVIDIA H100 80GB HBM3` with a UUID and bus id
    /// derived from `hostname` and `index`, so fake nodes stay distinct and
    /// reproducible.
    pub fn h100(index: u32, hostname: &str) -> Self {
        // FNV-1a of the hostname: a stable per-node salt for the UUID.
        let salt = hostname
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
            .wrapping_add(u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let bus = H100_BUSES[index as usize % H100_BUSES.len()];
        let mut gpu = Self {
            index,
            uuid: format!(
                "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                salt >> 32,
                (salt >> 16) & 0xffff,
                salt & 0xffff,
                (salt >> 48) ^ u64::from(index),
                salt & 0xffff_ffff_ffff
            ),
            pci_bus_id: format!("00000000:{bus:02X}:00.0"),
            model_name: "NVIDIA H100 80GB HBM3".to_owned(),
            hostname: hostname.to_owned(),
            driver_version: "580.159.04".to_owned(),
            holder: None,
            util: 0.0,
            gr_engine_active: 0.0,
            dram_active: 0.0,
            tensor_active: 0.0,
            fb_used_mib: 0,
            fb_free_mib: H100_FB_MIB,
            power_w: 0.0,
            energy_mj: 4_212_937_112 + 97_313_271 * u64::from(index),
            gpu_temp_c: 0,
            memory_temp_c: 0,
            sm_clock_mhz: 0,
            mem_clock_mhz: 2619,
            pcie_tx_bytes_per_s: 0,
            pcie_rx_bytes_per_s: 0,
        };
        gpu.apply_load(0.0);
        gpu
    }

    /// Sets every reading from one decode-load figure (0..1) the way an
    /// inference GPU behaves: the duty cycle saturates almost at once under
    /// continuous batching (which is why it is a poor scaling signal) while
    /// DRAM activity tracks the load up to about 0.8. A held GPU keeps vLLM's
    /// preallocated framebuffer whatever the load.
    pub fn apply_load(&mut self, load: f64) {
        let load = if load.is_nan() { 0.0 } else { load.clamp(0.0, 1.0) };
        let busy = load > 0.0;
        self.util = if busy { (load * 8.0).min(1.0) } else { 0.0 };
        self.gr_engine_active = (0.15 + 0.8 * load).min(0.95) * f64::from(u8::from(busy));
        self.dram_active = 0.8 * load;
        self.tensor_active = 0.32 * load;
        self.power_w = 69.872 + 630.0 * load;
        self.gpu_temp_c = 29 + (40.0 * load) as u32;
        self.memory_temp_c = 31 + (20.0 * load) as u32;
        self.sm_clock_mhz = if busy { 1980 } else { 345 };
        self.pcie_tx_bytes_per_s = (82_000_000.0 * load) as u64;
        self.pcie_rx_bytes_per_s = (203_000_000.0 * load) as u64;
        self.fb_used_mib = if self.holder.is_some() { 74_872 } else { 0 };
        self.fb_free_mib = H100_FB_MIB.saturating_sub(self.fb_used_mib);
    }
}

/// How a field's value is printed.
#[derive(Clone, Copy)]
enum Value {
    Int(fn(&Gpu) -> u64),
    Double(fn(&Gpu) -> f64),
}

/// One exported field: name before 4.9, name from 4.9 (with its help),
/// whether 4.9 turned a percent into a ratio, type, help, value.
struct Field {
    name: &'static str,
    renamed: Option<(&'static str, &'static str)>,
    percent_to_ratio: bool,
    kind: &'static str,
    help: &'static str,
    value: Value,
}

/// dcgm-exporter's default counters (`etc/default-counters.csv`), in its
/// order, plus the profiling fields the scaler reads.
const FIELDS: &[Field] = &[
    Field {
        name: "DCGM_FI_DEV_SM_CLOCK",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "SM clock frequency (in MHz).",
        value: Value::Int(|g| u64::from(g.sm_clock_mhz)),
    },
    Field {
        name: "DCGM_FI_DEV_MEM_CLOCK",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Memory clock frequency (in MHz).",
        value: Value::Int(|g| u64::from(g.mem_clock_mhz)),
    },
    Field {
        name: "DCGM_FI_DEV_MEMORY_TEMP",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Memory temperature (in C).",
        value: Value::Int(|g| u64::from(g.memory_temp_c)),
    },
    Field {
        name: "DCGM_FI_DEV_GPU_TEMP",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "GPU temperature (in C).",
        value: Value::Int(|g| u64::from(g.gpu_temp_c)),
    },
    Field {
        name: "DCGM_FI_DEV_POWER_USAGE",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Power draw (in W).",
        value: Value::Double(|g| g.power_w),
    },
    Field {
        name: "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        renamed: None,
        percent_to_ratio: false,
        kind: "counter",
        help: "Total energy consumption since boot (in mJ).",
        value: Value::Int(|g| g.energy_mj),
    },
    Field {
        name: "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        renamed: None,
        percent_to_ratio: false,
        kind: "counter",
        help: "Total number of PCIe retries.",
        value: Value::Int(|_| 0),
    },
    Field {
        name: "DCGM_FI_DEV_GPU_UTIL",
        renamed: Some(("DCGM_FI_DEV_GPU_UTIL_RATIO", "GPU utilization (ratio).")),
        percent_to_ratio: true,
        kind: "gauge",
        help: "GPU utilization (in %).",
        value: Value::Double(|g| g.util),
    },
    Field {
        name: "DCGM_FI_DEV_MEM_COPY_UTIL",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Memory utilization (in %).",
        value: Value::Int(|g| percent(g.dram_active)),
    },
    Field {
        name: "DCGM_FI_DEV_ENC_UTIL",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Encoder utilization (in %).",
        value: Value::Int(|_| 0),
    },
    Field {
        name: "DCGM_FI_DEV_DEC_UTIL",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Decoder utilization (in %).",
        value: Value::Int(|_| 0),
    },
    Field {
        name: "DCGM_FI_DEV_XID_ERRORS",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Value of the last XID error encountered.",
        value: Value::Int(|_| 0),
    },
    Field {
        name: "DCGM_FI_DEV_FB_FREE",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Framebuffer memory free (in MiB).",
        value: Value::Int(|g| g.fb_free_mib),
    },
    Field {
        name: "DCGM_FI_DEV_FB_USED",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "Framebuffer memory used (in MiB).",
        value: Value::Int(|g| g.fb_used_mib),
    },
    Field {
        name: "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        renamed: None,
        percent_to_ratio: false,
        kind: "counter",
        help: "Total number of NVLink bandwidth counters for all lanes.",
        value: Value::Int(|_| 0),
    },
    Field {
        name: "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "vGPU License status",
        value: Value::Int(|_| 0),
    },
    Field {
        name: "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        renamed: Some(("DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO", "Ratio of time the graphics engine is active.")),
        percent_to_ratio: false,
        kind: "gauge",
        help: "Ratio of time the graphics engine is active.",
        value: Value::Double(|g| g.gr_engine_active),
    },
    Field {
        name: "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        renamed: Some(("DCGM_FI_PROF_TENSOR_UTIL_RATIO", "Ratio of cycles the tensor (HMMA) pipe is active.")),
        percent_to_ratio: false,
        kind: "gauge",
        help: "Ratio of cycles the tensor (HMMA) pipe is active.",
        value: Value::Double(|g| g.tensor_active),
    },
    Field {
        name: "DCGM_FI_PROF_DRAM_ACTIVE",
        renamed: Some(("DCGM_FI_PROF_DRAM_UTIL_RATIO", "Ratio of cycles the device memory interface is active sending or receiving data.")),
        percent_to_ratio: false,
        kind: "gauge",
        help: "Ratio of cycles the device memory interface is active sending or receiving data.",
        value: Value::Double(|g| g.dram_active),
    },
    Field {
        name: "DCGM_FI_PROF_PCIE_TX_BYTES",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        value: Value::Int(|g| g.pcie_tx_bytes_per_s),
    },
    Field {
        name: "DCGM_FI_PROF_PCIE_RX_BYTES",
        renamed: None,
        percent_to_ratio: false,
        kind: "gauge",
        help: "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        value: Value::Int(|g| g.pcie_rx_bytes_per_s),
    },
];

/// A 0..1 ratio as the whole percent DCGM reports.
fn percent(ratio: f64) -> u64 {
    if ratio.is_nan() {
        return 0;
    }
    (ratio.clamp(0.0, 1.0) * 100.0).round() as u64
}

/// Appends the node's exposition text to `out` (nothing is cleared).
pub fn render(gpus: &[Gpu], flavor: DcgmFlavor, out: &mut String) {
    let v4_9 = flavor == DcgmFlavor::V4_9;
    let old = flavor == DcgmFlavor::OldNamespace;
    let uuid_label = if old { "uuid" } else { "UUID" };
    let host_label = match flavor {
        DcgmFlavor::V4_5 | DcgmFlavor::OldNamespace => "Hostname",
        DcgmFlavor::V4_6 | DcgmFlavor::V4_9 => "hostname",
    };
    let driver_label = if v4_9 { "DCGM_FI_SYSTEM_DRIVER_VERSION" } else { "DCGM_FI_DRIVER_VERSION" };
    let pod_labels = if old { ["container_name", "pod_namespace", "pod_name"] } else { ["container", "namespace", "pod"] };
    for field in FIELDS {
        let (name, help, ratio) = match field.renamed {
            Some((name, help)) if v4_9 => (name, help, true),
            _ => (field.name, field.help, false),
        };
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {}\n", field.kind);
        for g in gpus {
            let _ = write!(out, "{name}{{gpu=\"{}\",{uuid_label}=\"", g.index);
            push_label_value(out, &g.uuid);
            out.push_str("\",pci_bus_id=\"");
            push_label_value(out, &g.pci_bus_id);
            let _ = write!(out, "\",device=\"nvidia{}\",modelName=\"", g.index);
            push_label_value(out, &g.model_name);
            let _ = write!(out, "\",{host_label}=\"");
            push_label_value(out, &g.hostname);
            let _ = write!(out, "\",{driver_label}=\"");
            push_label_value(out, &g.driver_version);
            out.push('"');
            let holder = g.holder.as_ref().map(|h| [&h.container, &h.namespace, &h.pod]);
            match holder {
                Some(values) => {
                    for (label, value) in pod_labels.iter().zip(values) {
                        let _ = write!(out, ",{label}=\"");
                        push_label_value(out, value);
                        out.push('"');
                    }
                }
                None if old => {
                    for label in pod_labels {
                        let _ = write!(out, ",{label}=\"\"");
                    }
                }
                None => {}
            }
            out.push_str("} ");
            match field.value {
                // Percent fields hold a 0..1 ratio: whole percent before
                // 4.9, the ratio itself (as a double) from 4.9 on.
                Value::Double(f) if field.percent_to_ratio && !ratio => {
                    let _ = write!(out, "{}", percent(f(g)));
                }
                Value::Double(f) => {
                    let _ = write!(out, "{:.6}", f(g));
                }
                Value::Int(f) => {
                    let _ = write!(out, "{}", f(g));
                }
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Vec<Gpu> {
        let mut gpus: Vec<Gpu> = (0..2).map(|i| Gpu::h100(i, "gpu-node-1")).collect();
        gpus[0].holder = Some(PodRef { namespace: "ai-inference".into(), pod: "vllm-0".into(), container: "vllm".into() });
        gpus[0].apply_load(0.9);
        gpus
    }

    fn line<'a>(body: &'a str, prefix: &str) -> &'a str {
        body.lines().find(|l| l.starts_with(prefix)).unwrap_or("")
    }

    #[test]
    fn util_is_percent_before_4_9_and_ratio_after() {
        let gpus = node();
        let mut out = String::new();
        render(&gpus, DcgmFlavor::V4_6, &mut out);
        assert!(line(&out, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"").ends_with("} 100"));
        assert!(line(&out, "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\"").ends_with("} 0"));
        assert!(line(&out, "DCGM_FI_PROF_DRAM_ACTIVE{gpu=\"0\"").ends_with("} 0.720000"));
        out.clear();
        render(&gpus, DcgmFlavor::V4_9, &mut out);
        assert!(!out.contains("DCGM_FI_DEV_GPU_UTIL{"));
        assert!(line(&out, "DCGM_FI_DEV_GPU_UTIL_RATIO{gpu=\"0\"").ends_with("} 1.000000"));
        assert!(line(&out, "DCGM_FI_PROF_DRAM_UTIL_RATIO{gpu=\"0\"").ends_with("} 0.720000"));
        assert!(out.contains(",DCGM_FI_SYSTEM_DRIVER_VERSION=\"580.159.04\","));
    }

    #[test]
    fn label_order_and_pod_attribution() {
        let gpus = node();
        let mut out = String::new();
        render(&gpus, DcgmFlavor::V4_5, &mut out);
        let held = line(&out, "DCGM_FI_DEV_FB_USED{gpu=\"0\"");
        let expected = format!(
            "DCGM_FI_DEV_FB_USED{{gpu=\"0\",UUID=\"{}\",pci_bus_id=\"00000000:18:00.0\",\
             device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"gpu-node-1\",\
             DCGM_FI_DRIVER_VERSION=\"580.159.04\",container=\"vllm\",namespace=\"ai-inference\",\
             pod=\"vllm-0\"}} 74872",
            gpus[0].uuid
        );
        assert_eq!(held, expected);
        let free = line(&out, "DCGM_FI_DEV_FB_USED{gpu=\"1\"");
        assert!(free.ends_with("DCGM_FI_DRIVER_VERSION=\"580.159.04\"} 0"), "{free}");
        out.clear();
        render(&gpus, DcgmFlavor::OldNamespace, &mut out);
        let free = line(&out, "DCGM_FI_DEV_FB_USED{gpu=\"1\",uuid=");
        assert!(free.ends_with(",container_name=\"\",pod_namespace=\"\",pod_name=\"\"} 0"), "{free}");
    }

    #[test]
    fn h100_identities_are_distinct_and_stable() {
        let a = Gpu::h100(0, "n1");
        let b = Gpu::h100(1, "n1");
        let c = Gpu::h100(0, "n2");
        assert_ne!(a.uuid, b.uuid);
        assert_ne!(a.uuid, c.uuid);
        assert_eq!(a.uuid, Gpu::h100(0, "n1").uuid);
        assert_eq!(a.uuid.len(), "GPU-7ad09335-aadb-19c3-e3a8-1f0c2d7b9e41".len());
    }
}
