//! `misbehave`: a deliberately broken Switchyard plugin for the end-to-end tests.
//!
//! The first argument picks how it fails the handshake:
//!
//! | mode | behaviour |
//! | --- | --- |
//! | `exit-now` | says "misbehave: exiting with status 3" on stderr and exits 3 |
//! | `never-print` | prints nothing and sleeps forever |
//! | `garbage` | prints "hello from a confused plugin" on stdout, then sleeps |
//! | `unknown-version` | prints `1|99|unix|/tmp/nope|grpc|`, then sleeps |
//! | `netrpc` | prints `1|1|unix|/tmp/nope|netrpc|`, then sleeps |
//! | `long-line` | prints 100 KiB without a newline, then sleeps |
//! | `bad-socket` | prints a valid line for a socket that does not exist, then sleeps |
//! | `print-env FILE` | writes its whole environment to FILE (`KEY=VALUE\0`…), exits 0 |
//! | `spawn-grandchild` | starts a `sleep 300` child that stays in misbehave's process group (and also ignores SIGTERM with `--ignore-sigterm`), prints nothing, sleeps |
//!
//! Every mode first writes "misbehave: mode MODE" to stderr, so tests can check
//! that a plugin's stderr is attached to the hub's errors. With
//! `--ignore-sigterm` anywhere on the command line, SIGTERM is blocked, so only
//! SIGKILL ends it. Other arguments (such as `--e2e-marker X`) are ignored.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

/// The name of the socket `bad-socket` claims to listen on.
const MISSING_SOCKET_NAME: &str = "misbehave-no-such-socket";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    eprintln!("misbehave: mode {mode}");
    let stubborn = args.iter().any(|arg| arg == "--ignore-sigterm");
    if stubborn {
        ignore_sigterm();
    }
    match mode {
        "exit-now" => {
            eprintln!("misbehave: exiting with status 3");
            ExitCode::from(3)
        }
        "never-print" => sleep_forever(),
        "garbage" => {
            print_line("hello from a confused plugin");
            sleep_forever()
        }
        "unknown-version" => {
            print_line("1|99|unix|/tmp/nope|grpc|");
            sleep_forever()
        }
        "netrpc" => {
            print_line("1|1|unix|/tmp/nope|netrpc|");
            sleep_forever()
        }
        "long-line" => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&vec![b'x'; 100 * 1024]);
            let _ = stdout.flush();
            drop(stdout);
            sleep_forever()
        }
        "bad-socket" => {
            let dir = std::env::var("PLUGIN_UNIX_SOCKET_DIR").unwrap_or_else(|_| "/tmp".into());
            print_line(&format!("1|1|unix|{dir}/{MISSING_SOCKET_NAME}|grpc|"));
            sleep_forever()
        }
        "print-env" => match args.get(1) {
            Some(file) => print_env(file),
            None => {
                eprintln!("misbehave: print-env needs a FILE argument");
                ExitCode::from(2)
            }
        },
        "spawn-grandchild" => {
            // With --ignore-sigterm the grandchild ignores SIGTERM too (an
            // ignored disposition survives exec), so only a SIGKILL sent to
            // the whole process group ends both.
            let script = if stubborn {
                "trap '' TERM; exec sleep 300"
            } else {
                "exec sleep 300"
            };
            match std::process::Command::new("/bin/sh")
                .args(["-c", script])
                .spawn()
            {
                Ok(child) => eprintln!("misbehave: grandchild pid {}", child.id()),
                Err(err) => eprintln!("misbehave: cannot start the grandchild: {err}"),
            }
            sleep_forever()
        }
        other => {
            eprintln!("misbehave: unknown mode {other:?}");
            ExitCode::from(2)
        }
    }
}

/// Blocks SIGTERM for the whole process: it stays pending and never acts.
fn ignore_sigterm() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    if let Err(err) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("misbehave: cannot block SIGTERM: {err}");
    }
}

fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Writes `KEY=VALUE\0` for every variable to `file` (atomically, through a
/// temporary file and a rename, so readers never see half of it).
fn print_env(file: &str) -> ExitCode {
    let mut bytes = Vec::new();
    for (key, value) in std::env::vars_os() {
        bytes.extend_from_slice(key.as_encoded_bytes());
        bytes.push(b'=');
        bytes.extend_from_slice(value.as_encoded_bytes());
        bytes.push(0);
    }
    let partial = format!("{file}.partial");
    let written = std::fs::write(&partial, &bytes).and_then(|()| std::fs::rename(&partial, file));
    match written {
        Ok(()) => {
            eprintln!("misbehave: wrote the environment to {file}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("misbehave: cannot write {file}: {err}");
            ExitCode::from(2)
        }
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
