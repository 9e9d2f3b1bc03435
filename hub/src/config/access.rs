//! Who may reach the hub's HTTP API: the `[hub]` keys `webhook_listen` and
//! `admin_token_env`, and the rule that a hub listening beyond loopback must
//! have an admin token (see `docs/configuration.md`, "Protecting the admin
//! API").
//!
//! The token named by `admin_token_env` is read from the hub's environment
//! when the file is loaded, like webhook secrets: an unset or empty variable
//! is a config error naming the key and the variable, never the value.

use std::ffi::OsString;
use std::net::SocketAddr;

use super::DEFAULT_LISTEN;
use super::reader::{Context, Section};
use super::webhook::{Secret, read_secret_text};

/// What `[hub] webhook_listen` and `[hub] admin_token_env` configure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessConfig {
    /// `webhook_listen`: a second listener serving only `POST /webhooks/NAME`,
    /// `/healthz` and `/readyz`, or `None`.
    pub webhook_listen: Option<SocketAddr>,
    /// `admin_token_env`: the variable the admin token came from, or `None`.
    pub admin_token_env: Option<String>,
    /// The admin token (the variable's value, trimmed), or `None` when the
    /// admin API is open. Its `Debug` never shows it.
    pub admin_token: Option<Secret>,
}

/// Reads `webhook_listen` and `admin_token_env` from `[hub]`, taking the
/// token from the hub's environment, and refuses a non-loopback `listen`
/// without a token.
pub(crate) fn read(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    listen: SocketAddr,
) -> AccessConfig {
    read_with_env(context, section, listen, &|name| std::env::var_os(name))
}

/// [`read`] with the environment lookup supplied (tests cannot set
/// variables in-process safely).
pub(crate) fn read_with_env(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    listen: SocketAddr,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> AccessConfig {
    let mut access = AccessConfig::default();
    if let Some((text, span)) = section.string(context, "webhook_listen") {
        match text.parse::<SocketAddr>() {
            Ok(address) if address == listen && address.port() != 0 => context.error(
                span,
                format!(
                    "`webhook_listen` in [hub] is {address}, the same address as `listen`; give the webhook listener its own port, or remove `webhook_listen` (webhooks are served on `listen` too)"
                ),
            ),
            Ok(address) => access.webhook_listen = Some(address),
            Err(_) => context.error(
                span,
                format!(
                    "invalid listen address {text:?} for `webhook_listen` in [hub]: expected IP:PORT, for example \"0.0.0.0:8080\""
                ),
            ),
        }
    }
    let token_env = section.string(context, "admin_token_env");
    if let Some((variable, span)) = &token_env {
        match load_token(variable, env) {
            Ok(token) => access.admin_token = Some(token),
            Err(reason) => context.error(
                span.clone(),
                format!(
                    "the environment variable `{variable}` named by `admin_token_env` in [hub] {reason}"
                ),
            ),
        }
        access.admin_token_env = Some(variable.clone());
    }
    // A hub reachable from other hosts must not serve an open admin API.
    // (A bad `admin_token_env` is reported above; this is about none at all.)
    if !listen.ip().is_loopback() && token_env.is_none() {
        let span = section
            .get("listen")
            .map_or(section.span.clone(), |value| value.span());
        context.error(
            span,
            format!(
                "`listen` in [hub] is {listen}, which is not a loopback address, and no `admin_token_env` is set: anyone who can reach it could stop plugins and read every record; set `admin_token_env` to the name of a variable holding a bearer token, or listen on loopback (for example \"{DEFAULT_LISTEN}\") and put webhooks on `webhook_listen`"
            ),
        );
    }
    access
}

/// Reads the token in `variable`; the reason never includes the value.
fn load_token(variable: &str, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Secret, String> {
    let text = read_secret_text(variable, env)?;
    if text.bytes().any(|byte| !(0x21..=0x7e).contains(&byte)) {
        // RFC 6750's b64token is a subset of visible ASCII; a token with
        // spaces or control characters could never be sent in a header.
        return Err("holds characters other than visible ASCII, which cannot be sent in an `Authorization: Bearer` header".to_owned());
    }
    Ok(Secret::new(text.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use toml::de::DeTable;

    use super::*;

    /// Reads the access keys of `[hub]` in `text` (whose `listen` is
    /// `listen`) with `env` as the environment.
    fn read_text(
        text: &str,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Result<AccessConfig, Vec<String>> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let document = DeTable::parse(text).unwrap();
        let mut context = Context {
            path: Path::new("plugins.toml"),
            source: text,
            errors: Vec::new(),
        };
        let top = Section {
            label: "the top level".to_owned(),
            table: document.get_ref(),
            span: document.span(),
        };
        let section = top.table(&mut context, "hub").unwrap();
        let lookup = |name: &str| env.get(name).map(OsString::from);
        let access = read_with_env(&mut context, &section, listen.parse().unwrap(), &lookup);
        if context.errors.is_empty() {
            Ok(access)
        } else {
            Err(context.errors.iter().map(ToString::to_string).collect())
        }
    }

    #[test]
    fn the_token_is_read_from_the_named_variable_and_never_shown() {
        let access = read_text(
            "[hub]\nadmin_token_env = \"ADMIN\"\nwebhook_listen = \"0.0.0.0:8080\"\n",
            "127.0.0.1:7300",
            &[("ADMIN", "  s3cr3t-t0ken \n")],
        )
        .unwrap();
        assert_eq!(
            access.admin_token.as_ref().unwrap().expose(),
            b"s3cr3t-t0ken"
        );
        assert_eq!(access.admin_token_env.as_deref(), Some("ADMIN"));
        assert_eq!(access.webhook_listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert!(!format!("{access:?}").contains("s3cr3t"));
    }

    #[test]
    fn no_keys_means_an_open_admin_api_on_loopback() {
        let access = read_text("[hub]\n", "127.0.0.1:7300", &[]).unwrap();
        assert_eq!(access, AccessConfig::default());
        let access = read_text("[hub]\n", "[::1]:7300", &[]).unwrap();
        assert_eq!(access, AccessConfig::default());
    }

    #[test]
    fn an_unset_or_empty_variable_is_an_error_naming_key_and_variable() {
        let text = "[hub]\nadmin_token_env = \"ADMIN\"\n";
        let errors = read_text(text, "127.0.0.1:7300", &[]).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "plugins.toml:2:19: the environment variable `ADMIN` named by `admin_token_env` in [hub] is not set"
            ]
        );
        let errors = read_text(text, "127.0.0.1:7300", &[("ADMIN", "  ")]).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "plugins.toml:2:19: the environment variable `ADMIN` named by `admin_token_env` in [hub] is empty"
            ]
        );
        let errors = read_text(text, "127.0.0.1:7300", &[("ADMIN", "two words")]).unwrap_err();
        assert!(errors[0].contains("visible ASCII"), "{errors:?}");
        assert!(!errors[0].contains("two words"), "{errors:?}");
    }

    #[test]
    fn a_non_loopback_listen_without_a_token_is_refused_at_listen() {
        let text = "[hub]\nlisten = \"0.0.0.0:7300\"\n";
        let errors = read_text(text, "0.0.0.0:7300", &[]).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("plugins.toml:2:10: `listen` in [hub] is 0.0.0.0:7300, which is not a loopback address, and no `admin_token_env` is set"),
            "{errors:?}"
        );
        let with_token = "[hub]\nlisten = \"0.0.0.0:7300\"\nadmin_token_env = \"ADMIN\"\n";
        assert!(read_text(with_token, "0.0.0.0:7300", &[("ADMIN", "t")]).is_ok());
    }

    #[test]
    fn webhook_listen_must_differ_from_listen() {
        let errors = read_text(
            "[hub]\nwebhook_listen = \"127.0.0.1:7300\"\n",
            "127.0.0.1:7300",
            &[],
        )
        .unwrap_err();
        assert!(
            errors[0].starts_with("plugins.toml:2:18: `webhook_listen` in [hub] is 127.0.0.1:7300, the same address as `listen`"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_bad_webhook_listen_is_an_error() {
        let errors = read_text(
            "[hub]\nwebhook_listen = \"public:80\"\n",
            "127.0.0.1:7300",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                "plugins.toml:2:18: invalid listen address \"public:80\" for `webhook_listen` in [hub]: expected IP:PORT, for example \"0.0.0.0:8080\""
            ]
        );
    }
}
