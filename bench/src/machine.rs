//! The machine a report was measured on: CPU model, cores, kernel, memory,
//! load when the run started, and the date.

use serde::Serialize;

/// What the report says about the machine.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    /// The CPU model name from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// The 1, 5 and 15 minute load averages when the run started (other work
    /// on the machine shows up here).
    pub load_average: String,
    /// When the run started (RFC 3339, UTC).
    pub date: String,
    /// The Rust compiler, as `rustc --version` prints it (if found).
    pub rustc: Option<String>,
}

/// Reads the machine's description.
pub fn collect() -> MachineInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    MachineInfo {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned()),
        memory_mib: memory_kib / 1024,
        load_average: load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        rustc: std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned()),
    }
}
