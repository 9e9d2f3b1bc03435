//! The one list of the hub's routes, each with who may call it ([`Access`]).
//!
//! Both routers are built from [`routes`]: the main listener serves every
//! route (admin routes behind the bearer token when one is configured), the
//! webhook listener only [`Access::Probe`] and [`Access::Webhook`] routes.
//! Tests walk [`table`] to check every admin route's protection, so a new
//! route cannot be forgotten: add it here and it is served and tested.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::{AppState, admin, calls, cluster, control, data, reload, sync, webhooks};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `/healthz` and `/readyz`: open, on both listeners.
    Probe,
    /// Open, on the main listener only: `/metrics` (and whatever else may be
    /// read without the token, such as static assets).
    Open,
    /// `POST /webhooks/NAME`: open (webhooks carry their own authentication),
    /// on both listeners.
    Webhook,
    /// Everything else: the admin API, on the main listener only, behind
    /// `Authorization: Bearer` when `[hub] admin_token_env` is set.
    Admin,
}

impl Access {
    /// Whether the webhook listener (`[hub] webhook_listen`) serves it.
    pub fn on_webhook_listener(self) -> bool {
        matches!(self, Access::Probe | Access::Webhook)
    }
}

/// The HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET (HEAD is answered too).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Verb {
    /// The method's name (`GET`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// What a route is: method, axum path pattern (`/api/v1/plugins/{name}`)
/// and access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The method.
    pub verb: Verb,
    /// The path pattern, with `{name}` and `{id}` parameters.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// A route and its handler.
pub struct Route {
    /// What it is.
    pub spec: RouteSpec,
    /// Its handler, for that method only.
    pub endpoint: MethodRouter<AppState>,
}

fn route<H, T>(access: Access, verb: Verb, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route {
        spec: RouteSpec { verb, path, access },
        endpoint: on(verb.filter(), handler),
    }
}

/// Every route the hub serves, with its handler.
pub fn routes() -> Vec<Route> {
    use Access::{Admin, Open, Probe, Webhook};
    use Verb::{Delete, Get, Post, Put};
    vec![
        route(Probe, Get, "/healthz", admin::healthz),
        route(Probe, Get, "/readyz", admin::readyz),
        route(Open, Get, "/metrics", control::metrics),
        route(Webhook, Post, "/webhooks/{name}", webhooks::receive),
        route(Admin, Get, "/api/v1/plugins", admin::list_plugins),
        route(Admin, Get, "/api/v1/plugins/{name}", admin::get_plugin),
        route(Admin, Post, "/api/v1/plugins/{name}/call/poll", calls::poll),
        route(
            Admin,
            Post,
            "/api/v1/plugins/{name}/call/webhook",
            calls::webhook,
        ),
        route(
            Admin,
            Post,
            "/api/v1/plugins/{name}/call/enrich",
            calls::enrich,
        ),
        route(
            Admin,
            Post,
            "/api/v1/plugins/{name}/call/events",
            calls::events,
        ),
        route(
            Admin,
            Post,
            "/api/v1/plugins/{name}/restart",
            control::restart,
        ),
        route(Admin, Post, "/api/v1/plugins/{name}/stop", control::stop),
        route(Admin, Post, "/api/v1/plugins/{name}/start", control::start),
        route(
            Admin,
            Get,
            "/api/v1/plugins/{name}/checkpoint",
            sync::get_checkpoint,
        ),
        route(
            Admin,
            Put,
            "/api/v1/plugins/{name}/checkpoint",
            sync::put_checkpoint,
        ),
        route(
            Admin,
            Delete,
            "/api/v1/plugins/{name}/checkpoint",
            sync::delete_checkpoint,
        ),
        route(Admin, Post, "/api/v1/plugins/{name}/poll", sync::poll_now),
        route(Admin, Post, "/api/v1/reload", reload::reload),
        route(Admin, Get, "/api/v1/cluster", cluster::cluster),
        route(Admin, Get, "/api/v1/records", data::list_records),
        route(Admin, Get, "/api/v1/records/{id}", data::get_record),
        route(Admin, Get, "/api/v1/dead-letters", data::list_dead_letters),
        route(
            Admin,
            Get,
            "/api/v1/dead-letters/{id}",
            data::get_dead_letter,
        ),
        route(
            Admin,
            Delete,
            "/api/v1/dead-letters/{id}",
            data::delete_dead_letter,
        ),
        route(
            Admin,
            Post,
            "/api/v1/dead-letters/{id}/replay",
            data::replay_dead_letter,
        ),
    ]
}

/// What [`routes`] serves, without the handlers.
pub fn table() -> Vec<RouteSpec> {
    routes().into_iter().map(|route| route.spec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_and_path_is_listed_once() {
        let table = table();
        for (index, spec) in table.iter().enumerate() {
            assert!(
                !table[..index]
                    .iter()
                    .any(|other| other.verb == spec.verb && other.path == spec.path),
                "{spec:?} is listed twice"
            );
        }
    }

    #[test]
    fn only_probes_and_webhooks_are_served_to_the_internet() {
        let public: Vec<&str> = table()
            .into_iter()
            .filter(|spec| spec.access.on_webhook_listener())
            .map(|spec| spec.path)
            .collect();
        assert_eq!(public, ["/healthz", "/readyz", "/webhooks/{name}"]);
    }
}
