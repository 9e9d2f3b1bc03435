//! Looking at processes through `/proc`.
//!
//! Tests mark every plugin they configure, in its arguments
//! (`--e2e-marker MARK`) and in its environment (`E2E_MARKER=MARK`), so the
//! processes a hub started (and their children, which inherit the environment)
//! can be found even after the hub is gone.

use std::fs;

/// The environment variable tests set on plugins to find them later.
pub const MARKER_ENV: &str = "E2E_MARKER";

/// The pids of live (not zombie) processes marked with `marker` or with a
/// sub-marker `marker.SOMETHING`, in their command line or their
/// [`MARKER_ENV`] variable. The calling process is never included.
pub fn processes_with_marker(marker: &str) -> Vec<i32> {
    let own = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter(|&pid| is_marked(pid, marker) && is_alive(pid))
        .collect();
    pids.sort_unstable();
    pids
}

fn is_marked(pid: i32, marker: &str) -> bool {
    let matches = |value: &[u8]| {
        value == marker.as_bytes()
            || (value.starts_with(marker.as_bytes()) && value.get(marker.len()) == Some(&b'.'))
    };
    let in_cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(matches));
    if in_cmdline {
        return true;
    }
    let prefix = format!("{MARKER_ENV}=");
    if let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) {
        return environ
            .split(|&b| b == 0)
            .filter_map(|entry| entry.strip_prefix(prefix.as_bytes()))
            .any(matches);
    }
    false
}

/// The fields of `/proc/PID/stat` after the command name: index 0 is the
/// state, 1 the parent pid, 2 the process group.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// The process's state letter (`R`, `S`, `Z`, …), or `None` when there is no
/// such process.
pub fn process_state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// The process's parent pid, or `None` when there is no such process.
pub fn parent_pid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// The process group id of `pid`, or `None` when there is no such process.
pub fn process_group(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// True when `pid` is a zombie: dead but not yet reaped by its parent.
pub fn is_zombie(pid: i32) -> bool {
    process_state(pid) == Some('Z')
}

/// True when `pid` exists and is neither a zombie nor dead.
pub fn is_alive(pid: i32) -> bool {
    matches!(process_state(pid), Some(state) if state != 'Z' && state != 'X')
}

/// The zombie children of `parent`: processes it started, that died, and that
/// it has not reaped.
/// The zombie children of `parent` still there after waiting up to 5 s for
/// them to be reaped: empty unless the parent really leaves zombies. (A
/// child that exited a moment ago is a zombie until its parent reaps it, so
/// "none at this instant" would fail on a busy machine.)
pub fn zombies_left(parent: i32) -> Vec<i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let zombies = zombie_children(parent);
        if zombies.is_empty() || std::time::Instant::now() >= deadline {
            return zombies;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The zombie children of `parent` at this instant.
pub fn zombie_children(parent: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| parent_pid(pid) == Some(parent) && is_zombie(pid))
        .collect()
}
