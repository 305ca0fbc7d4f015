//! A Kubernetes API server for tests: the list and watch wire protocol
//! over plain HTTP, for the kinds Sluice watches, so that the proxy's
//! unmodified kube client runs against it.
//!
//! - **list:** `GET /apis/networking.k8s.io/v1/ingresses` and the like,
//!   cluster-wide or under `/namespaces/NS/`. The answer is a `…List` with
//!   `metadata.resourceVersion`.
//! - **watch:** `?watch=true&resourceVersion=N`. The answer streams one
//!   JSON event per line:
//!   - ADDED, MODIFIED and DELETED for every change after N;
//!   - a BOOKMARK every 500 ms when asked for;
//!   - an ERROR with code 410 when N is older than the last compaction
//!     (see [`KubeApi::expire_watches`]).
//!
//! Tests change objects with [`KubeApi::apply`] and [`KubeApi::delete`],
//! and can stop and restart the whole server on the same port.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::{Body, TempDir};

/// The kinds served: (kind, API group path, plural).
const KINDS: [(&str, &str, &str); 23] = [
    (
        "GatewayClass",
        "/apis/gateway.networking.k8s.io/v1",
        "gatewayclasses",
    ),
    ("Gateway", "/apis/gateway.networking.k8s.io/v1", "gateways"),
    (
        "HTTPRoute",
        "/apis/gateway.networking.k8s.io/v1",
        "httproutes",
    ),
    (
        "GRPCRoute",
        "/apis/gateway.networking.k8s.io/v1",
        "grpcroutes",
    ),
    (
        "ReferenceGrant",
        "/apis/gateway.networking.k8s.io/v1beta1",
        "referencegrants",
    ),
    ("Namespace", "/api/v1", "namespaces"),
    ("ServiceAccount", "/api/v1", "serviceaccounts"),
    ("ConfigMap", "/api/v1", "configmaps"),
    ("Deployment", "/apis/apps/v1", "deployments"),
    ("DaemonSet", "/apis/apps/v1", "daemonsets"),
    (
        "ClusterRole",
        "/apis/rbac.authorization.k8s.io/v1",
        "clusterroles",
    ),
    (
        "ClusterRoleBinding",
        "/apis/rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
    ),
    ("Role", "/apis/rbac.authorization.k8s.io/v1", "roles"),
    (
        "RoleBinding",
        "/apis/rbac.authorization.k8s.io/v1",
        "rolebindings",
    ),
    (
        "PodDisruptionBudget",
        "/apis/policy/v1",
        "poddisruptionbudgets",
    ),
    ("Pod", "/api/v1", "pods"),
    ("Secret", "/api/v1", "secrets"),
    ("Ingress", "/apis/networking.k8s.io/v1", "ingresses"),
    (
        "IngressClass",
        "/apis/networking.k8s.io/v1",
        "ingressclasses",
    ),
    ("Service", "/api/v1", "services"),
    (
        "EndpointSlice",
        "/apis/discovery.k8s.io/v1",
        "endpointslices",
    ),
    ("Lease", "/apis/coordination.k8s.io/v1", "leases"),
    ("Event", "/apis/events.k8s.io/v1", "events"),
];

/// A kind's apiVersion, from its group path in [`KINDS`]: `/api/v1` is
/// `v1`, `/apis/GROUP/v1` is `GROUP/v1`.
fn api_version(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|k| k.0 == kind)
        .map(|k| k.1.trim_start_matches("/apis/").trim_start_matches("/api/"))
        .unwrap_or("v1")
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn status(code: u16, reason: &str) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "code": code, "reason": reason, "message": reason}),
    )
}

#[derive(Default)]
struct State {
    rv: u64,
    /// (kind, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    /// Every change: (resourceVersion, kind, event type, object).
    log: Vec<(u64, String, &'static str, Value)>,
    /// Watches from this resourceVersion or older get 410 Gone.
    compacted: u64,
    /// Requests served, by "list"/"watch".
    lists: usize,
    watches: usize,
    /// Pod requests: (whole objects, metadata only).
    pod_requests: (usize, usize),
    /// The field selectors Secrets were asked for with.
    secret_selectors: Vec<String>,
    /// What happens to Deployments written (see [`Rollouts`]).
    rollouts: Rollouts,
    /// The address a cloud controller would give Services of type
    /// LoadBalancer; none while `None`.
    lb_address: Option<String>,
    /// (verb, plural) pairs answered 403.
    forbidden: Vec<(String, String)>,
    /// The fieldManager of every write, in order.
    field_managers: Vec<String>,
    /// Writes that changed an object (creates, updates, deletes).
    writes: usize,
    /// Refuse objects in namespaces that do not exist, as a real API
    /// server does (off by default: most tests never create Namespaces).
    require_namespaces: bool,
}

/// What the API server's controllers do with a Deployment that is written:
/// nothing (no status, as with no controller running), roll it out, or
/// start pods that never become ready.
#[derive(Debug, Clone, Default)]
pub enum Rollouts {
    #[default]
    Off,
    /// Every replica is updated, ready and available shortly after.
    Complete,
    /// The pods are created but wait with this reason and message
    /// (ImagePullBackOff, CrashLoopBackOff, …), and the rollout never
    /// completes.
    Stuck { reason: String, message: String },
    /// The pods are created but no node takes them (the scheduler's
    /// message), and the rollout never completes.
    Unschedulable { message: String },
}

/// The running test API server.
pub struct KubeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<()>,
    /// Closes every open watch with a 410 when sent.
    expire: broadcast::Sender<()>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    dir: TempDir,
}

impl KubeApi {
    pub async fn start() -> KubeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (changes, _) = broadcast::channel(1024);
        let (expire, _) = broadcast::channel(16);
        let api = KubeApi {
            addr,
            state: Arc::default(),
            changes,
            expire,
            server: Mutex::new(None),
            dir: TempDir::new(),
        };
        api.serve(listener);
        std::fs::write(api.kubeconfig(), api.kubeconfig_text()).unwrap();
        api
    }

    /// A kubeconfig file pointing at this server.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.0.join("kubeconfig")
    }

    fn kubeconfig_text(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://{}\n\
             users:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
             current-context: test\n",
            self.addr
        )
    }

    fn serve(&self, listener: TcpListener) {
        let (state, changes, expire) = (
            self.state.clone(),
            self.changes.clone(),
            self.expire.clone(),
        );
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (state, changes, expire) = (state.clone(), changes.clone(), expire.clone());
                // Connections die with the server task (the JoinSet aborts
                // them when dropped), as when an API server goes away.
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let (state, changes, expire) =
                            (state.clone(), changes.clone(), expire.clone());
                        async move { Ok::<_, Infallible>(handle(req, state, changes, expire).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// Stops the server: the port refuses connections, and open watches
    /// break.
    pub fn stop(&self) {
        if let Some(t) = self.server.lock().unwrap().take() {
            t.abort();
        }
    }

    /// Starts it again on the same port, with the same objects.
    pub async fn restart(&self) {
        self.stop();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Creates or replaces an object (its `kind`, `metadata.namespace` and
    /// `metadata.name` say which).
    pub fn apply(&self, mut obj: Value) {
        let kind = obj["kind"].as_str().expect("kind").to_owned();
        obj["apiVersion"] = json!(api_version(&kind));
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        let key = (kind.clone(), ns, name.clone());
        let kind_type = if s.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        if obj["metadata"].get("creationTimestamp").is_none() {
            let created = s
                .objects
                .get(&key)
                .and_then(|o| o["metadata"].get("creationTimestamp").cloned())
                .unwrap_or_else(|| {
                    json!(format!(
                        "2026-01-01T00:{:02}:{:02}Z",
                        (rv / 60) % 60,
                        rv % 60
                    ))
                });
            obj["metadata"]["creationTimestamp"] = created;
        }
        if kind == "Namespace" {
            // As the API server has done since Kubernetes 1.21.
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        obj["metadata"]["uid"] = json!(format!("uid-{kind}-{name}"));
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if api_version(&kind).starts_with("gateway.networking.k8s.io/") {
            // As `kubectl apply` meets a real API server: the generation
            // counts changes of spec, and the status stays as written.
            let old = s.objects.get(&key);
            let generation = old
                .and_then(|c| c["metadata"]["generation"].as_i64())
                .unwrap_or(0);
            let changed = old.is_none_or(|c| c.get("spec") != obj.get("spec"));
            obj["metadata"]["generation"] = json!(generation + i64::from(changed));
            if obj.get("status").is_none() {
                if let Some(status) = old.and_then(|c| c.get("status")).cloned() {
                    obj["status"] = status;
                }
            }
        }
        s.objects.insert(key, obj.clone());
        s.log.push((rv, kind, kind_type, obj));
        drop(s);
        let _ = self.changes.send(());
    }

    /// Deletes an object; false if there was none.
    pub fn delete(&self, kind: &str, ns: &str, name: &str) -> bool {
        let mut s = self.state.lock().unwrap();
        let Some(mut obj) = s.objects.remove(&(kind.into(), ns.into(), name.into())) else {
            return false;
        };
        s.rv += 1;
        let rv = s.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        s.log.push((rv, kind.into(), "DELETED", obj));
        drop(s);
        let _ = self.changes.send(());
        true
    }

    /// Forgets the change history: every open watch gets a 410 Gone, and
    /// so does every watch that resumes from before now. Clients must
    /// relist.
    pub fn expire_watches(&self) {
        let mut s = self.state.lock().unwrap();
        s.compacted = s.rv;
        s.log.clear();
        drop(s);
        let _ = self.expire.send(());
    }

    /// The object stored, if any.
    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(&(kind.into(), ns.into(), name.into()))
            .cloned()
    }

    /// Every object of a kind.
    pub fn all(&self, kind: &str) -> Vec<Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .iter()
            .filter(|((k, _, _), _)| k == kind)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// The field selectors Secrets were listed and watched with.
    pub fn secret_selectors(&self) -> Vec<String> {
        self.state.lock().unwrap().secret_selectors.clone()
    }

    /// Pod requests so far: (whole objects, metadata only).
    pub fn pod_requests(&self) -> (usize, usize) {
        self.state.lock().unwrap().pod_requests
    }

    /// How Deployments written from now on roll out.
    pub fn set_rollouts(&self, r: Rollouts) {
        self.state.lock().unwrap().rollouts = r;
    }

    /// Gives Services of type LoadBalancer this address (now and when
    /// written later), as a cloud controller does.
    pub fn set_lb_address(&self, addr: Option<&str>) {
        let mut s = self.state.lock().unwrap();
        s.lb_address = addr.map(str::to_owned);
        let keys: Vec<_> = s
            .objects
            .iter()
            .filter(|((k, _, _), o)| k == "Service" && o["spec"]["type"] == "LoadBalancer")
            .map(|(k, _)| k.clone())
            .collect();
        drop(s);
        for k in keys {
            self.settle(&k);
        }
    }

    /// Answers 403 to `verb` (get, list, create, patch, update, delete) on
    /// `plural` (e.g. "deployments"), as RBAC would.
    pub fn forbid(&self, verb: &str, plural: &str) {
        self.state
            .lock()
            .unwrap()
            .forbidden
            .push((verb.to_owned(), plural.to_owned()));
    }

    /// From now on, writes into a namespace that does not exist (other than
    /// `default`) are refused with 404, as a real API server refuses them.
    pub fn require_namespaces(&self) {
        self.state.lock().unwrap().require_namespaces = true;
    }

    /// The fieldManager of every write so far.
    pub fn field_managers(&self) -> Vec<String> {
        self.state.lock().unwrap().field_managers.clone()
    }

    /// Writes that changed something, so far.
    pub fn writes(&self) -> usize {
        self.state.lock().unwrap().writes
    }

    /// Runs the simulated controllers on one object now.
    fn settle(&self, key: &(String, String, String)) {
        settle(&self.state, &self.changes, key);
    }

    /// (lists, watches) served so far.
    pub fn requests(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.lists, s.watches)
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a path asks for: kind, namespace, object name, subresource.
struct Target {
    kind: &'static str,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn route(path: &str) -> Option<Target> {
    // Namespaces are objects under the same prefix that scopes the others.
    if let Some(rest) = path.strip_prefix("/api/v1/namespaces") {
        let rest = rest.trim_start_matches('/');
        if !rest.contains('/') {
            return Some(Target {
                kind: "Namespace",
                ns: None,
                name: (!rest.is_empty()).then(|| rest.to_owned()),
                sub: None,
            });
        }
    }
    for (kind, group, plural) in KINDS {
        let Some(rest) = path.strip_prefix(group) else {
            continue;
        };
        let (ns, tail) = match rest.strip_prefix("/namespaces/") {
            Some(ns_rest) => {
                let (ns, tail) = ns_rest.split_once('/')?;
                (Some(ns.to_owned()), tail)
            }
            None => (None, rest.trim_start_matches('/')),
        };
        let mut parts = tail.split('/');
        if parts.next() != Some(plural) {
            continue;
        }
        let name = parts.next().map(str::to_owned);
        let sub = parts.next().map(str::to_owned);
        return Some(Target {
            kind,
            ns,
            name,
            sub,
        });
    }
    None
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(n) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(n);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equality label selectors: `a=b,c=d`.
fn label_match(obj: &Value, selector: Option<&String>) -> bool {
    selector.is_none_or(|sel| {
        sel.split(',')
            .filter(|t| !t.is_empty())
            .all(|term| match term.split_once('=') {
                Some((k, v)) => {
                    obj["metadata"]["labels"][k].as_str() == Some(v.trim_start_matches('='))
                }
                None => obj["metadata"]["labels"].get(term).is_some(),
            })
    })
}

/// The RBAC verb of a request.
fn verb(req: &Request<Incoming>, t: &Target) -> &'static str {
    let watch = req.uri().query().is_some_and(|q| q.contains("watch=true"));
    match (req.method().as_str(), t.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "unknown",
    }
}

/// A 403 as RBAC words it, when the test forbade this verb on this kind.
fn forbidden(
    req: &Request<Incoming>,
    t: &Target,
    state: &Arc<Mutex<State>>,
) -> Option<Response<Body>> {
    let verb = verb(req, t);
    let plural = KINDS.iter().find(|k| k.0 == t.kind)?.2;
    let denied = state
        .lock()
        .unwrap()
        .forbidden
        .iter()
        .any(|(v, p)| v == verb && p == plural);
    if !denied {
        return None;
    }
    let group = api_version(t.kind)
        .split_once('/')
        .map(|g| g.0)
        .unwrap_or("");
    let scope = match &t.ns {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_owned(),
    };
    let message = format!(
        "{plural}{} \"{}\" is forbidden: User \"deployer\" cannot {verb} resource \"{plural}\" in API group \"{group}\"{scope}",
        if group.is_empty() { String::new() } else { format!(".{group}") },
        t.name.clone().unwrap_or_default()
    );
    Some(json_response(
        StatusCode::FORBIDDEN,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "code": 403, "reason": "Forbidden", "message": message}),
    ))
}

/// The field selectors served: `type=VALUE` (how TLS Secrets are asked
/// for) and `metadata.name=VALUE` (how a Secret an annotation names is).
fn field_match(obj: &Value, selector: Option<&String>) -> bool {
    let Some(s) = selector else { return true };
    if let Some(t) = s.strip_prefix("type=") {
        return obj["type"].as_str() == Some(t);
    }
    if let Some(n) = s.strip_prefix("metadata.name=") {
        return obj["metadata"]["name"].as_str() == Some(n);
    }
    true
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn in_scope(obj: &Value, ns: &Option<String>) -> bool {
    ns.as_deref()
        .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<()>,
    expire: broadcast::Sender<()>,
) -> Response<Body> {
    if req.uri().path() == "/version" {
        return json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}),
        );
    }
    let Some(target) = route(req.uri().path()) else {
        return status(404, "NotFound");
    };
    let (kind, ns) = (target.kind, target.ns.clone());
    if let Some(denied) = forbidden(&req, &target, &state) {
        return denied;
    }
    // Metadata-only requests (kube's PartialObjectMeta) get objects cut
    // down to their metadata, as a real API server answers them.
    let meta_only = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
    let q = query(&req);
    let selector = q.get("fieldSelector").cloned();
    let labels = q.get("labelSelector").cloned();
    if kind == "Secret" {
        state
            .lock()
            .unwrap()
            .secret_selectors
            .push(selector.clone().unwrap_or_default());
    }
    if kind == "Pod" {
        let mut s = state.lock().unwrap();
        if meta_only {
            s.pod_requests.1 += 1;
        } else {
            s.pod_requests.0 += 1;
        }
    }
    let shape = move |o: &Value| -> Value {
        if meta_only {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": o["metadata"].clone()})
        } else {
            o.clone()
        }
    };
    if req.method() != http::Method::GET || target.name.is_some() {
        return write(req, target, &state, &changes).await;
    }
    if q.get("watch").map(String::as_str) != Some("true") {
        let mut s = state.lock().unwrap();
        s.lists += 1;
        let items: Vec<Value> = s
            .objects
            .iter()
            .filter(|((k, _, _), o)| {
                k == kind
                    && in_scope(o, &ns)
                    && field_match(o, selector.as_ref())
                    && label_match(o, labels.as_ref())
            })
            .map(|(_, o)| shape(o))
            .collect();
        return json_response(
            StatusCode::OK,
            &json!({
                "kind": if meta_only { "PartialObjectMetadataList".to_owned() } else { format!("{kind}List") },
                "apiVersion": if meta_only { "meta.k8s.io/v1" } else { api_version(kind) },
                "metadata": {"resourceVersion": s.rv.to_string()},
                "items": items,
            }),
        );
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(290u64)
        .min(290);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut changed = changes.subscribe();
    let mut expired = expire.subscribe();
    {
        let mut s = state.lock().unwrap();
        s.watches += 1;
    }
    tokio::spawn(async move {
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
            "message": "too old resource version"}});
        let line = |v: &Value| Bytes::from(format!("{v}\n"));
        let mut sent = from;
        let end = tokio::time::Instant::now() + Duration::from_secs(timeout);
        loop {
            // Everything after `sent`, or a 410 if that history is gone.
            let history = {
                let s = state.lock().unwrap();
                (sent >= s.compacted).then(|| {
                    let events: Vec<Value> = s
                        .log
                        .iter()
                        .filter(|(rv, k, _, o)| {
                            *rv > sent
                                && k == kind
                                && in_scope(o, &ns)
                                && field_match(o, selector.as_ref())
                        })
                        .map(|(_, _, t, o)| json!({"type": t, "object": shape(o)}))
                        .collect();
                    (events, s.rv)
                })
            };
            let Some((events, rv)) = history else {
                let _ = tx.send(line(&gone)).await;
                return;
            };
            for e in &events {
                if tx.send(line(e)).await.is_err() {
                    return;
                }
            }
            sent = rv;
            tokio::select! {
                r = changed.recv() => {
                    if matches!(r, Err(broadcast::error::RecvError::Closed)) {
                        return;
                    }
                }
                _ = expired.recv() => {
                    let _ = tx.send(line(&gone)).await;
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(500)), if bookmarks => {
                    let b = json!({"type": "BOOKMARK", "object": {"kind": kind,
                        "apiVersion": api_version(kind),
                        "metadata": {"resourceVersion": sent.to_string()}}});
                    if tx.send(line(&b)).await.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(end) => return,
            }
        }
    });
    let stream = tokio_stream_from(rx).map(|b| Ok::<_, hyper::Error>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// GET of one object, POST (create), PUT (replace, resourceVersion
/// checked), PATCH (JSON merge patch of the object or its status, or a
/// server-side apply) and DELETE. A write that changes nothing is not
/// stored and keeps the resourceVersion, as a real API server does.
async fn write(
    req: Request<Incoming>,
    t: Target,
    state: &Arc<Mutex<State>>,
    changes: &broadcast::Sender<()>,
) -> Response<Body> {
    let method = req.method().clone();
    let apply = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("apply-patch"));
    let field_manager = query(&req).get("fieldManager").cloned();
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return status(400, "BadRequest"),
    };
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => return status(400, "BadRequest"),
        }
    };
    let ns = t.ns.clone().unwrap_or_default();
    let name = t
        .name
        .clone()
        .or_else(|| body["metadata"]["name"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let key = (t.kind.to_owned(), ns.clone(), name.clone());
    let mut s = state.lock().unwrap();
    let current = s.objects.get(&key).cloned();
    let creates = current.is_none() && matches!(method.as_str(), "POST" | "PATCH" | "PUT");
    if creates
        && s.require_namespaces
        && !ns.is_empty()
        && ns != "default"
        && !s
            .objects
            .contains_key(&("Namespace".to_owned(), String::new(), ns.clone()))
    {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "code": 404, "reason": "NotFound", "message": format!("namespaces \"{ns}\" not found")}),
        );
    }
    let mut obj = match (method.as_str(), t.name.is_some(), current.clone()) {
        ("GET", true, Some(o)) => return json_response(StatusCode::OK, &o),
        ("GET", true, None) => return status(404, "NotFound"),
        ("DELETE", true, Some(mut o)) => {
            s.objects.remove(&key);
            s.rv += 1;
            s.writes += 1;
            let rv = s.rv;
            o["metadata"]["resourceVersion"] = json!(rv.to_string());
            s.log.push((rv, t.kind.to_owned(), "DELETED", o.clone()));
            drop(s);
            let _ = changes.send(());
            return json_response(StatusCode::OK, &o);
        }
        ("DELETE", true, None) => return status(404, "NotFound"),
        ("POST", false, Some(_)) => return status(409, "AlreadyExists"),
        ("POST", false, None) => body,
        ("PUT", true, None) => return status(404, "NotFound"),
        ("PUT", true, Some(cur)) => {
            let sent = body["metadata"]["resourceVersion"].as_str();
            if sent.is_some_and(|rv| Some(rv) != cur["metadata"]["resourceVersion"].as_str()) {
                return status(409, "Conflict");
            }
            body
        }
        ("PATCH", true, None) if apply => body,
        ("PATCH", true, Some(cur)) if apply => server_side_apply(cur, &body),
        ("PATCH", true, Some(mut cur)) => {
            let patch = if t.sub.as_deref() == Some("status") {
                json!({"status": body["status"].clone()})
            } else {
                body
            };
            merge(&mut cur, &patch);
            cur
        }
        ("PATCH", true, None) => return status(404, "NotFound"),
        _ => return status(405, "MethodNotAllowed"),
    };
    if let Some(m) = field_manager {
        s.field_managers.push(m);
    }
    obj["kind"] = json!(t.kind);
    obj["apiVersion"] = json!(api_version(t.kind));
    obj["metadata"]["name"] = json!(name);
    if !ns.is_empty() {
        obj["metadata"]["namespace"] = json!(ns);
    }
    if let Some(cur) = &current {
        let same = |a: &Value, b: &Value| {
            let (mut a, mut b) = (a.clone(), b.clone());
            for v in [&mut a, &mut b] {
                if let Some(m) = v["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
            }
            a == b
        };
        if same(cur, &obj) {
            return json_response(StatusCode::OK, cur);
        }
    }
    // metadata.generation counts changes of spec, as for every kind with one.
    let old_generation = current
        .as_ref()
        .and_then(|c| c["metadata"]["generation"].as_i64())
        .unwrap_or(0);
    let spec_changed = current
        .as_ref()
        .is_none_or(|c| c.get("spec") != obj.get("spec"));
    if obj.get("spec").is_some() {
        obj["metadata"]["generation"] = json!(old_generation + i64::from(spec_changed));
    }
    s.rv += 1;
    s.writes += 1;
    let rv = s.rv;
    if obj["metadata"].get("creationTimestamp").is_none() {
        obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    let event = if current.is_some() {
        "MODIFIED"
    } else {
        "ADDED"
    };
    s.objects.insert(key.clone(), obj.clone());
    s.log.push((rv, t.kind.to_owned(), event, obj.clone()));
    drop(s);
    let _ = changes.send(());
    if matches!(t.kind, "Deployment" | "Service") && t.sub.is_none() {
        // The controllers act a moment later, as real ones do.
        let (state, changes) = (state.clone(), changes.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            settle(&state, &changes, &key);
        });
    }
    let code = if method == http::Method::POST || current.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_response(code, &obj)
}

/// A server-side apply by one manager: the fields it sends replace the
/// object's (labels and annotations as a whole, so the ones it stops
/// sending go), and what others wrote — status, other metadata — stays.
fn server_side_apply(mut cur: Value, applied: &Value) -> Value {
    let Some(fields) = applied.as_object() else {
        return cur;
    };
    for (k, v) in fields {
        match k.as_str() {
            "metadata" => {
                for f in ["labels", "annotations"] {
                    match v.get(f) {
                        Some(x) => cur["metadata"][f] = x.clone(),
                        None => {
                            if let Some(m) = cur["metadata"].as_object_mut() {
                                m.remove(f);
                            }
                        }
                    }
                }
            }
            "status" | "apiVersion" | "kind" => {}
            _ => cur[k] = v.clone(),
        }
    }
    cur
}

/// The simulated controllers, on one object: Deployments roll out as
/// [`Rollouts`] says, Services of type LoadBalancer get the address.
fn settle(
    state: &Arc<Mutex<State>>,
    changes: &broadcast::Sender<()>,
    key: &(String, String, String),
) {
    let mut s = state.lock().unwrap();
    let Some(mut obj) = s.objects.get(key).cloned() else {
        return;
    };
    let mut pods = Vec::new();
    match key.0.as_str() {
        "Deployment" => {
            let n = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let generation = obj["metadata"]["generation"].clone();
            match s.rollouts.clone() {
                Rollouts::Off => return,
                Rollouts::Complete => {
                    obj["status"] = json!({"observedGeneration": generation, "replicas": n,
                        "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n});
                }
                stuck @ (Rollouts::Stuck { .. } | Rollouts::Unschedulable { .. }) => {
                    obj["status"] = json!({"observedGeneration": generation, "replicas": n,
                        "updatedReplicas": n, "readyReplicas": 0, "availableReplicas": 0,
                        "unavailableReplicas": n});
                    let template = &obj["spec"]["template"];
                    let status = match stuck {
                        Rollouts::Stuck { reason, message } => json!({"phase": "Pending",
                            "containerStatuses": [{
                                "name": template["spec"]["containers"][0]["name"].clone(),
                                "ready": false, "restartCount": 0,
                                "image": template["spec"]["containers"][0]["image"].clone(),
                                "imageID": "",
                                "state": {"waiting": {"reason": reason, "message": message}}}]}),
                        Rollouts::Unschedulable { message } => json!({"phase": "Pending",
                            "conditions": [{"type": "PodScheduled", "status": "False",
                                "reason": "Unschedulable", "message": message}]}),
                        _ => unreachable!("matched above"),
                    };
                    for i in 0..n {
                        pods.push(json!({"kind": "Pod", "apiVersion": "v1",
                            "metadata": {"name": format!("{}-5d9c7b-{i}", key.2), "namespace": key.1,
                                "labels": template["metadata"]["labels"].clone()},
                            "spec": template["spec"].clone(),
                            "status": status.clone()}));
                    }
                }
            }
        }
        "Service" => {
            let Some(addr) = s.lb_address.clone() else {
                return;
            };
            if obj["spec"]["type"] != "LoadBalancer" {
                return;
            }
            obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": addr}]}});
        }
        _ => return,
    }
    if s.objects.get(key) == Some(&obj) && pods.is_empty() {
        return;
    }
    for (k, o) in std::iter::once((key.clone(), obj)).chain(pods.into_iter().map(|p| {
        let k = (
            "Pod".to_owned(),
            key.1.clone(),
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        (k, p)
    })) {
        s.rv += 1;
        let rv = s.rv;
        let mut o = o;
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
        let event = if s.objects.contains_key(&k) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.objects.insert(k.clone(), o.clone());
        s.log.push((rv, k.0.clone(), event, o));
    }
    drop(s);
    let _ = changes.send(());
}

/// An mpsc receiver as a stream.
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}
