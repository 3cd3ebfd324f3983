//! A mock API server for the flow controller's IO tests, and a reconcile [`Context`] whose
//! client talks to it (no cluster).
//!
//! The client's HTTP service is one end of a `tower_test` mock pair; the test holds the other
//! end ([`ApiServer`]) and plays the API server: it takes each request in the order the agent
//! sends it, asserts what it is, and answers it (or never does). Run the tests on tokio's paused
//! clock: a wait for a request then ends as soon as every task is idle, so [`ApiServer::quiet`]
//! proves that nothing more is sent, and a call that never answers times out at once.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use jobflow::api::{JobFlow, JobFlowSpec, Step};
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{Handle, SendResponse};

use super::context::Context;
use super::error::Error;
use super::key_locks::KeyLocks;
use super::queue::Queue;
use super::reconcile::reconcile;
use crate::kube::caches::{Caches, Writers};
use crate::kube::call::Calls;
use crate::kube::events::EventPublisher;
use crate::kube::leadership::Leadership;
use crate::metrics::Metrics;

/// How long the mock waits for a request it expects before it calls the agent stuck (on the
/// paused clock this passes only once every task is idle, and after any call's timeout).
const PATIENCE: Duration = Duration::from_secs(60);
/// How long nothing may arrive for [`ApiServer::quiet`] (on the paused clock: until every task,
/// the background Event publisher included, is idle).
const QUIET: Duration = Duration::from_secs(1);

/// The Jobs of namespace `ns`.
pub const JOBS: &str = "/apis/batch/v1/namespaces/ns/jobs";
/// The Events of namespace `ns`.
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

/// The status subresource of the flow `name` in `ns`.
pub fn status_path(name: &str) -> String {
    format!("/apis/workflow.kube-zen.io/v1alpha1/namespaces/ns/jobflows/{name}/status")
}

/// The Job `name` in `ns`.
pub fn job_path(name: &str) -> String {
    format!("{JOBS}/{name}")
}

/// The test's end of the client's HTTP service.
pub struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
}

/// One request the agent sent, waiting for its answer.
pub struct Call {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string (empty when none).
    pub query: String,
    /// The JSON body (`Null` when empty).
    pub body: Value,
    reply: SendResponse<Response<Body>>,
}

impl ApiServer {
    /// The next request; panics if none comes.
    pub async fn next(&mut self) -> Call {
        let (request, reply) = tokio::time::timeout(PATIENCE, self.handle.next_request())
            .await
            .expect("the agent sent no further request")
            .expect("the client is gone");
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Call {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            body,
            reply,
        }
    }

    /// The next request, asserted to be `method` on `path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected request (body {})",
            call.body
        );
        call
    }

    /// Asserts that the agent sends nothing more.
    pub async fn quiet(&mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(QUIET, self.handle.next_request()).await
        {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }

    /// Answers every Event the agent publishes until it is quiet; their reasons, in order.
    pub async fn events(&mut self) -> Vec<String> {
        let mut reasons = Vec::new();
        loop {
            let Ok(next) = tokio::time::timeout(QUIET, self.next()).await else {
                return reasons;
            };
            assert_eq!((&next.method, next.path.as_str()), (&Method::POST, EVENTS));
            reasons.push(next.body["reason"].as_str().unwrap_or_default().to_owned());
            let body = next.body.clone();
            next.answer(StatusCode::CREATED, &body);
        }
    }
}

impl Call {
    /// The name of the object the request carries.
    pub fn name(&self) -> String {
        self.body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Answers with `status` and the JSON `body`.
    pub fn answer(self, status: StatusCode, body: &Value) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        self.reply.send_response(response);
    }

    /// Answers a create with 201 and the object posted, given `uid`; returns that object.
    pub fn created(self, uid: &str) -> Value {
        let mut object = self.body.clone();
        object["metadata"]["uid"] = json!(uid);
        object["metadata"]["namespace"] = json!("ns");
        object["metadata"]["resourceVersion"] = json!("10");
        self.answer(StatusCode::CREATED, &object);
        object
    }

    /// Answers with a failure `Status` of `code` and `reason`.
    pub fn fail(self, code: u16, reason: &str, message: &str) {
        let status = json!({
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        });
        self.answer(StatusCode::from_u16(code).unwrap(), &status);
    }

    /// Answers a status write of `flow` (as stored, templates included) with the flow at
    /// `resource_version` holding the status written; returns the status written.
    pub fn written(self, flow: &JobFlow, resource_version: &str) -> jobflow::api::JobFlowStatus {
        // Server-side apply of the status alone, forced, as the agent's field manager.
        for param in ["fieldManager=jobflow-agent", "force=true"] {
            assert!(self.query.contains(param), "{param} in {}", self.query);
        }
        assert_eq!(self.body["kind"], "JobFlow");
        assert_eq!(self.body.as_object().map(serde_json::Map::len), Some(3));
        let status: jobflow::api::JobFlowStatus =
            serde_json::from_value(self.body["status"].clone()).unwrap();
        let mut stored = flow.clone();
        stored.status = Some(status.clone());
        stored.metadata.resource_version = Some(resource_version.to_owned());
        self.answer(StatusCode::OK, &serde_json::to_value(&stored).unwrap());
        status
    }

    /// Never answers: the request stays open as long as the returned sender lives.
    pub fn hang(self) -> SendResponse<Response<Body>> {
        self.reply
    }
}

/// A reconcile context on the mock API server, with caches the test fills as the watch would.
pub struct Harness {
    /// The reconcile context.
    pub ctx: Arc<Context>,
    /// The mock API server.
    pub server: ApiServer,
    /// The guard the context's calls ask.
    pub leadership: Leadership,
    writers: Writers,
}

impl Harness {
    /// A context for namespace `ns` whose writes ask `leadership`.
    pub fn new(leadership: Leadership) -> Self {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "ns");
        let (caches, writers) = Caches::new(Some("ns".to_owned()));
        let metrics = Arc::new(Metrics::new().unwrap());
        let ctx = Context {
            client: client.clone(),
            calls: Calls::new(leadership.clone(), Arc::clone(&metrics)),
            caches,
            queue: Arc::new(Queue::default()),
            events: EventPublisher::new(client, "jobflow-agent", "test"),
            key_locks: KeyLocks::default(),
            metrics,
        };
        Self {
            ctx: Arc::new(ctx),
            server: ApiServer { handle },
            leadership,
            writers,
        }
    }

    /// Feeds `flow` to the flow cache as its watch would; returns the cached flow (templates
    /// moved to the index), as the controller hands it to a reconcile.
    pub fn put_flow(&mut self, flow: JobFlow) -> Arc<JobFlow> {
        let key = kube::runtime::reflector::ObjectRef::from_obj(&flow);
        self.ctx.caches.put_flow(&mut self.writers, flow);
        self.ctx.caches.flows.get(&key).unwrap()
    }

    /// Starts one reconcile of `flow`.
    pub fn reconcile(&self, flow: &Arc<JobFlow>) -> JoinHandle<Result<Action, Error>> {
        tokio::spawn(reconcile(Arc::clone(flow), Arc::clone(&self.ctx)))
    }
}

/// A Job step running busybox after `dependencies`.
pub fn job_step(name: &str, dependencies: &[&str]) -> Step {
    Step {
        name: name.to_owned(),
        dependencies: dependencies.iter().map(|d| (*d).to_owned()).collect(),
        template: Some(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {"template": {"spec": {
                "containers": [{"name": "main", "image": "busybox:latest"}],
                "restartPolicy": "Never"
            }}}
        })),
        ..Step::default()
    }
}

/// The flow `f` (UID `u`) in `ns` with `steps`, generation 1, resourceVersion 1, no status.
pub fn flow_of(steps: Vec<Step>) -> JobFlow {
    let mut flow = crate::testing::flow("f", "u", None, 0);
    flow.spec = JobFlowSpec {
        steps,
        ..JobFlowSpec::default()
    };
    flow.metadata.generation = Some(1);
    flow.metadata.resource_version = Some("1".to_owned());
    flow
}
