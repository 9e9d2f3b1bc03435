//! SQLite serves one hub: a second `switchyard run` on the same SQLite file
//! is refused with a clear error naming the first hub's pid, and once the
//! first hub is gone (even SIGKILLed) the file is free again.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::HubProcess;

fn config(port: u16) -> String {
    format!("[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://hub.db\"\n")
}

#[tokio::test]
async fn a_second_hub_on_the_same_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first_port = common::free_port();
    let first = HubProcess::spawn(
        dir,
        &config(first_port),
        first_port,
        &[],
        "/readyz",
        Duration::from_secs(30),
    )
    .await;

    // The same file from a second config in another directory.
    let other = tempfile::tempdir().unwrap();
    let database = first.dir().join("hub.db");
    let second_config = config(common::free_port()).replace(
        "sqlite://hub.db",
        &format!("sqlite://{}", database.display()),
    );
    std::fs::write(other.path().join("plugins.toml"), second_config).unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("run")
            .arg("--config")
            .arg(other.path().join("plugins.toml"))
            .env("NO_COLOR", "1")
            .output(),
    )
    .await
    .expect("the second hub did not exit")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the SQLite database {} is already used by another hub (pid {})",
            database.display(),
            first.pid()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("SQLite serves one hub only"), "{stderr}");
    // The first hub is unharmed.
    let (status, _) = first.send("GET", "/readyz", None).await;
    assert_eq!(status, 200);

    // SIGKILL frees the file at once: a new hub starts on it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(first.pid()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let port = common::free_port();
    let again = config(port).replace(
        "sqlite://hub.db",
        &format!("sqlite://{}", database.display()),
    );
    let next =
        HubProcess::spawn(other, &again, port, &[], "/readyz", Duration::from_secs(30)).await;
    let (status, _) = next.send("GET", "/readyz", None).await;
    assert_eq!(status, 200);
    drop(first);
}
