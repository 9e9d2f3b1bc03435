//! systemd integration on the real `switchyard` binary: with
//! `NOTIFY_SOCKET` naming a datagram socket the test binds (as systemd does
//! for a `Type=notify` unit) and `WATCHDOG_USEC=200000`, the hub sends
//! `READY=1` once it serves HTTP, `WATCHDOG=1` every 100 ms, and
//! `STOPPING=1` on SIGTERM, then exits 0. The example unit in `deploy/`
//! passes `systemd-analyze verify` when systemd-analyze is installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::HubProcess;

/// Receives the next notification, or panics after `limit`.
async fn next(socket: &tokio::net::UnixDatagram, limit: Duration) -> String {
    let mut buffer = vec![0_u8; 4096];
    let length = tokio::time::timeout(limit, socket.recv(&mut buffer))
        .await
        .expect("no notification in time")
        .unwrap();
    String::from_utf8(buffer[..length].to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let port = common::free_port();
    let hub_dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://hub.db\"\n\
         [plugins.fake]\ncommand = \"{}\"\n",
        common::fake_plugin().display()
    );
    let spawned = std::time::Instant::now();
    let mut hub = HubProcess::spawn(
        hub_dir,
        &config,
        port,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
        "/healthz",
        Duration::from_secs(20),
    )
    .await;

    // READY=1 first (the hub answered /healthz, so it was sent by now).
    let ready = next(&socket, Duration::from_secs(10)).await;
    assert!(ready.lines().any(|line| line == "READY=1"), "{ready:?}");
    // Then watchdog pings, every WATCHDOG_USEC / 2 = 100 ms: at least two,
    // and (since they are paced) no more than one per 100 ms since start.
    let mut pings = 0_u32;
    while pings < 2 {
        assert_eq!(next(&socket, Duration::from_secs(5)).await, "WATCHDOG=1");
        pings += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut buffer = vec![0_u8; 4096];
    while let Ok(length) = socket.try_recv(&mut buffer) {
        assert_eq!(&buffer[..length], b"WATCHDOG=1");
        pings += 1;
    }
    let paced = u32::try_from(spawned.elapsed().as_millis() / 100).unwrap() + 2;
    assert!(pings <= paced, "{pings} pings in {:?}", spawned.elapsed());

    let status = hub.terminate(Duration::from_secs(20));
    // Pings may still come while it stops; STOPPING=1 must come.
    let mut stopping = false;
    while let Ok(received) =
        tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buffer)).await
    {
        let length = received.unwrap();
        stopping |= String::from_utf8_lossy(&buffer[..length])
            .lines()
            .any(|line| line == "STOPPING=1");
    }
    assert!(stopping, "no STOPPING=1; hub log:\n{}", hub.log());
    assert!(
        status.is_some_and(|status| status.success()),
        "{status:?}; hub log:\n{}",
        hub.log()
    );
    assert!(
        !hub.log().contains("Cannot notify systemd"),
        "{}",
        hub.log()
    );
}

#[test]
fn the_example_unit_passes_systemd_analyze_verify() {
    let unit =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/switchyard.service");
    assert!(unit.is_file(), "{} is missing", unit.display());
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(
            text.contains(line),
            "{line} missing from {}",
            unit.display()
        );
    }
    let available = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !available {
        assert!(
            std::env::var_os("SWITCHYARD_REQUIRE_ALL").is_none(),
            "systemd-analyze is missing (SWITCHYARD_REQUIRE_ALL is set)"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    // verify checks that ExecStart exists: point it at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("switchyard.service");
    let binary = env!("CARGO_BIN_EXE_switchyard");
    std::fs::write(&copy, text.replace("/usr/local/bin/switchyard", binary)).unwrap();
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "systemd-analyze verify failed:\n{report}"
    );
    assert!(
        !report.contains("switchyard.service:"),
        "warnings about the unit:\n{report}"
    );
}
