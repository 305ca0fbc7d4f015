//! Kubernetes discovery: Ingresses, IngressClasses, Services and
//! EndpointSlices drive the routing table.
//!
//! One watcher per kind feeds a reflector store (what discovery never
//! reads is dropped as it arrives, see `slim`; EndpointSlices become a
//! type of our own, see `slice`). The watches and the rebuild loop run on
//! a discovery thread (`crate::background::discovery`), never on a
//! serving thread; the rebuilds themselves on the config thread.
//! Events only say *that* something changed: the routes are rebuilt from
//! the stores' whole contents, never from single events — at once after a
//! quiet spell, at most once per debounce while changes keep coming. A
//! relist after a 410 Gone or a reconnect swaps a store's contents in one step, so a rebuild never sees
//! a half-empty store and the table never empties. While the API server
//! is away, the last table keeps serving; watch errors are counted in
//! `sluice_kube_watch_errors_total` and retried with back-off.

pub mod annotations;
pub mod certs;
pub mod configmap;
pub mod gateway;
mod named_secrets;
pub mod slice;
mod slim;
pub mod status;
pub mod translate;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use tokio::sync::{watch, Notify};

use crate::metrics::Metrics;
use crate::sources::Sources;
use crate::tasks::Tasks;
pub use translate::{ControllerConfig, TranslateSettings, CONTROLLER};

/// How to reach the API server and what to watch.
#[derive(Debug, Clone)]
pub struct Options {
    /// A kubeconfig file; otherwise in-cluster config or `KUBECONFIG`.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Watch one namespace only (IngressClasses are cluster-wide).
    pub namespace: Option<String>,
    /// Which Ingresses are ours, and what their routes start from.
    pub settings: TranslateSettings,
    /// The least time between the starts of two rebuilds: changes within
    /// it of the last one are gathered into the next.
    pub debounce: Duration,
    /// Write the published Service's address into Ingress status.
    pub status: Option<status::StatusOptions>,
    /// `namespace/name` of a TLS Secret for names no certificate holds
    /// (ingress-nginx's `--default-ssl-certificate`).
    pub default_tls_secret: Option<String>,
    /// `--gateway-class`: serve Gateway API's objects of this GatewayClass.
    pub gateway_class: Option<String>,
}

/// Why the Kubernetes client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--kubeconfig` could not be read or used.
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither in-cluster settings nor a kubeconfig were found.
    #[error("{0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The settings were found, and the client refused them.
    #[error("cannot make a client: {0}")]
    Client(#[source] kube::Error),
}

/// Connects a client as `opts` says.
pub async fn client(opts: &Options) -> Result<Client, ClientError> {
    connect(opts.kubeconfig.as_deref()).await
}

/// Connects a client with `kubeconfig`, else in-cluster settings or
/// `KUBECONFIG`.
pub async fn connect(kubeconfig: Option<&std::path::Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let named = |source| ClientError::Kubeconfig {
                path: path.to_owned(),
                source,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(named)?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(named)?
        }
        None => kube::Config::infer().await.map_err(ClientError::Infer)?,
    };
    Client::try_from(config).map_err(ClientError::Client)
}

/// Starts the watches and the rebuild loop. The receiver turns true after
/// the first complete sync of every kind has been published, and stays
/// true through later outages.
pub fn start(
    client: Client,
    opts: Options,
    sources: Arc<Sources>,
    metrics: Arc<Metrics>,
    tasks: &Tasks,
) -> watch::Receiver<bool> {
    let changed = Arc::new(Notify::new());
    let ns = opts.namespace.as_deref();
    let ingresses = watch_kind::<Ingress>(
        namespaced(&client, ns),
        watcher::Config::default(),
        "ingress",
        &changed,
        &metrics,
        tasks,
    );
    let classes = watch_kind::<IngressClass>(
        Api::all(client.clone()),
        watcher::Config::default(),
        "ingressclass",
        &changed,
        &metrics,
        tasks,
    );
    let services = watch_kind::<Service>(
        namespaced(&client, ns),
        watcher::Config::default(),
        "service",
        &changed,
        &metrics,
        tasks,
    );
    let slices = watch_as::<EndpointSlice, slice::Slice>(
        namespaced(&client, ns),
        watcher::Config::default(),
        "endpointslice",
        &changed,
        &metrics,
        tasks,
    );
    // TLS Secrets only (a field selector): the rest of a cluster's Secrets
    // are none of the proxy's business.
    let secrets = watch_kind::<k8s_openapi::api::core::v1::Secret>(
        namespaced(&client, ns),
        watcher::Config::default().fields("type=kubernetes.io/tls"),
        "secret",
        &changed,
        &metrics,
        tasks,
    );
    let gateway = opts.gateway_class.as_ref().map(|_| GatewayStores {
        classes: watch_kind::<gateway::api::GatewayClass>(
            Api::all(client.clone()),
            watcher::Config::default(),
            "gatewayclass",
            &changed,
            &metrics,
            tasks,
        ),
        gateways: watch_kind::<gateway::api::Gateway>(
            namespaced(&client, ns),
            watcher::Config::default(),
            "gateway",
            &changed,
            &metrics,
            tasks,
        ),
        routes: watch_kind::<gateway::api::HttpRoute>(
            namespaced(&client, ns),
            watcher::Config::default(),
            "httproute",
            &changed,
            &metrics,
            tasks,
        ),
        grpc_routes: watch_kind::<gateway::api::GrpcRoute>(
            namespaced(&client, ns),
            watcher::Config::default(),
            "grpcroute",
            &changed,
            &metrics,
            tasks,
        ),
        grants: watch_kind::<gateway::api::ReferenceGrant>(
            namespaced(&client, ns),
            watcher::Config::default(),
            "referencegrant",
            &changed,
            &metrics,
            tasks,
        ),
        // Their labels, for listeners that take routes by namespace
        // selector; metadata only. Not with --namespace: the routes are
        // all in that one.
        namespaces: ns
            .is_none()
            .then(|| watch_namespaces(&client, &changed, &metrics, tasks)),
    });
    let (gateway_tx, gateway_rx) = watch::channel(Arc::new(gateway::attach::Verdicts::default()));
    let (ready_tx, ready_rx) = watch::channel(false);
    let ready = Arc::new(ready_tx);
    let (owned_tx, owned_rx) = watch::channel(Arc::new(Vec::new()));
    if let Some(s) = opts.status.clone() {
        tasks.spawn(
            "ingress status",
            status::run(
                client.clone(),
                s,
                services.clone(),
                ingresses.clone(),
                owned_rx,
                gateway.is_some().then_some(gateway_rx),
            ),
        );
    }
    let reporter = kube::runtime::events::Reporter {
        controller: "sluice".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let rebuild = rebuild_loop(Rebuild {
        stores: Stores {
            ingresses,
            classes,
            services,
            slices,
            secrets,
            gateway,
        },
        opts,
        sources,
        changed,
        ready: ready.clone(),
        owned: owned_tx,
        gateway_verdicts: gateway_tx,
        reporter,
        client: client.clone(),
        metrics: metrics.clone(),
        tasks: tasks.clone(),
    });
    // A rebuild loop that dies (it should not) must not leave a frozen
    // table looking ready.
    tasks.spawn_discovery("kubernetes rebuild", async move {
        use futures_util::FutureExt;
        if std::panic::AssertUnwindSafe(rebuild)
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!(
                "the kubernetes rebuild loop panicked; routes are frozen and /readyz turns 503"
            );
            let _ = ready.send(false);
        }
    });
    ready_rx
}

/// The reflector stores, read whole at each rebuild.
#[derive(Clone)]
struct Stores {
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<slice::Slice>,
    secrets: Store<k8s_openapi::api::core::v1::Secret>,
    /// With `--gateway-class`.
    gateway: Option<GatewayStores>,
}

/// Gateway API's stores.
#[derive(Clone)]
struct GatewayStores {
    classes: Store<gateway::api::GatewayClass>,
    gateways: Store<gateway::api::Gateway>,
    routes: Store<gateway::api::HttpRoute>,
    grpc_routes: Store<gateway::api::GrpcRoute>,
    grants: Store<gateway::api::ReferenceGrant>,
    namespaces: Option<Store<NamespaceMeta>>,
}

/// Namespaces, metadata only: for their labels.
type NamespaceMeta = kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>;

impl GatewayStores {
    /// Waits for each kind's first list, for at most `limit` in all: a
    /// cluster without the Gateway API CRDs (or without the RBAC to read
    /// them) must not keep Ingresses from being served.
    async fn wait(&self, limit: Duration) {
        let all = async {
            let _ = self.classes.wait_until_ready().await;
            let _ = self.gateways.wait_until_ready().await;
            let _ = self.routes.wait_until_ready().await;
            let _ = self.grpc_routes.wait_until_ready().await;
            let _ = self.grants.wait_until_ready().await;
            if let Some(n) = &self.namespaces {
                let _ = n.wait_until_ready().await;
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::error!(
                "Gateway API objects not listed within {limit:?}: are the Gateway API CRDs (standard channel, v1.1 or later for GRPCRoute) installed, and may this ServiceAccount read them? Ingresses are served meanwhile; Gateway API routes follow once their lists come"
            );
        }
    }

    /// What `attach` decides from the stores, with the Services and TLS
    /// Secrets of the same rebuild.
    fn decide(
        &self,
        class: &str,
        services: &[Arc<k8s_openapi::api::core::v1::Service>],
        secrets: &[Arc<k8s_openapi::api::core::v1::Secret>],
    ) -> translate::GatewayState {
        let namespaces: gateway::api::NamespaceLabels = self
            .namespaces
            .iter()
            .flat_map(|n| n.state())
            .filter_map(|n| {
                Some((
                    n.metadata.name.clone()?,
                    n.metadata.labels.clone().unwrap_or_default(),
                ))
            })
            .collect();
        let grants = self.grants.state();
        // GRPCRoutes are judged and served as the HTTPRoutes they amount
        // to, their kind kept.
        let mut routes = self.routes.state();
        routes.extend(
            self.grpc_routes
                .state()
                .iter()
                .map(|g| Arc::new(g.as_http())),
        );
        let verdicts = gateway::attach::decide(&gateway::attach::Inputs {
            class,
            classes: &self.classes.state(),
            gateways: &self.gateways.state(),
            routes: &routes,
            grants: &grants,
            namespaces: &namespaces,
            services,
            secrets,
        });
        translate::GatewayState {
            verdicts: Arc::new(verdicts),
            grants,
        }
    }
}

/// What the rebuild loop works with.
struct Rebuild {
    stores: Stores,
    opts: Options,
    sources: Arc<Sources>,
    changed: Arc<Notify>,
    ready: Arc<watch::Sender<bool>>,
    /// The Ingresses served, for the status writer.
    owned: watch::Sender<Arc<Vec<String>>>,
    /// What Gateway API's objects were judged, for the status writer.
    gateway_verdicts: watch::Sender<Arc<gateway::attach::Verdicts>>,
    /// Who records Events.
    reporter: kube::runtime::events::Reporter,
    /// For watches started later (pod metadata).
    client: Client,
    metrics: Arc<Metrics>,
    /// Owns the watches started later and the Events being recorded.
    tasks: Tasks,
}

async fn rebuild_loop(r: Rebuild) {
    let Rebuild {
        stores,
        opts,
        sources,
        changed,
        ready,
        owned,
        gateway_verdicts,
        reporter,
        client,
        metrics,
        tasks,
    } = r;
    let mut pods: Option<Store<PodMeta>> = None;
    let mut named = named_secrets::NamedSecrets::default();
    let mut last_events: std::collections::HashSet<(String, String)> = Default::default();
    // The first table waits for every kind's first complete list.
    for (kind, ok) in [
        ("ingress", stores.ingresses.wait_until_ready().await.is_ok()),
        (
            "ingressclass",
            stores.classes.wait_until_ready().await.is_ok(),
        ),
        ("service", stores.services.wait_until_ready().await.is_ok()),
        (
            "endpointslice",
            stores.slices.wait_until_ready().await.is_ok(),
        ),
        ("secret", stores.secrets.wait_until_ready().await.is_ok()),
    ] {
        if !ok {
            tracing::error!(kind, "watch ended before its first sync");
            return;
        }
    }
    if let Some(g) = &stores.gateway {
        g.wait(Duration::from_secs(10)).await;
    }
    let settings = Arc::new(opts.settings);
    let secret_certs = Arc::new(std::sync::Mutex::new(certs::SecretCerts::default()));
    let mut last_problems = std::collections::HashSet::new();
    let mut last_shape = (usize::MAX, usize::MAX);
    loop {
        // Off the serving threads, on the config thread that yields to
        // them: a large cluster's rebuild takes milliseconds, which a
        // request must never wait behind.
        // Pod weights cost a watch of every pod's metadata: started only
        // once some Service asks for them.
        if pods.is_none()
            && stores
                .services
                .state()
                .iter()
                .any(|s| annotations::parse(&s.metadata.annotations).pod_weights)
        {
            tracing::info!("a Service asks for pod weights: watching pod metadata");
            pods = Some(watch_pod_metadata(
                &client,
                opts.namespace.as_deref(),
                &changed,
                &metrics,
                &tasks,
            ));
        }
        // What the build off the runtime threads reads: its own handles.
        let (for_build, build_settings, build_sources) =
            (stores.clone(), settings.clone(), sources.clone());
        let pod_store = pods.clone();
        let named_stores = named.stores();
        let secret_certs = secret_certs.clone();
        let default_secret = opts.default_tls_secret.clone();
        let gateway_class = opts.gateway_class.clone();
        let started = std::time::Instant::now();
        let built = crate::background::run(move || {
            let mut weight_problems = Vec::new();
            let pod_weights = pod_store
                .map(|p| {
                    p.state()
                        .iter()
                        .filter_map(|pod| {
                            let ns = pod.metadata.namespace.clone()?;
                            let name = pod.metadata.name.clone()?;
                            match annotations::pod_weight(&pod.metadata.annotations) {
                                Ok(w) => w.map(|w| ((ns, name), w)),
                                Err(e) => {
                                    weight_problems.push(format!("pod {ns}/{name}: {e}"));
                                    None
                                }
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut state = translate::ClusterState {
                ingresses: for_build.ingresses.state(),
                classes: for_build.classes.state(),
                services: for_build.services.state(),
                slices: for_build.slices.state(),
                pod_weights,
                secrets: for_build.secrets.state(),
                named_secrets: named_stores.iter().flat_map(|s| s.state()).collect(),
                gateway: None,
            };
            if let (Some(g), Some(class)) = (&for_build.gateway, gateway_class.as_deref()) {
                state.gateway = Some(g.decide(class, &state.services, &state.secrets));
            }
            let verdicts = state.gateway.as_ref().map(|g| g.verdicts.clone());
            let t = translate::translate(&state, &build_settings);
            let shape = (t.routes.len(), t.owned.len());
            let certs = secret_certs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .resolve(&t.tls, default_secret.as_deref(), &state.secrets);
            let mut problems = t.problems;
            problems.extend(weight_problems);
            problems.extend(certs.problems);
            let mut events = t.events;
            events.extend(certs.events);
            let generation = build_sources.set_discovered(crate::sources::Discovered {
                routes: t.routes,
                default: t.default_backend,
                certs: certs.bindings,
                default_cert: certs.default_cert,
                passthrough: t.passthrough,
            });
            (
                generation,
                shape,
                problems,
                t.owned,
                events,
                t.named_secrets,
                verdicts,
            )
        })
        .await;
        metrics
            .kube_rebuild_duration
            .observe(started.elapsed().as_secs_f64());
        match built {
            Ok((generation, shape, problems, served, events, wanted, verdicts)) => {
                if let Some(v) = verdicts {
                    gateway_verdicts.send_replace(v);
                }
                // A Secret named for the first time: its watch wakes this
                // loop again once it has it.
                named.want(&wanted, &client, &changed, &metrics, &tasks);
                record_events(&client, &reporter, events, &mut last_events, &tasks);
                // Every rebuild, even with the same list: the status writer
                // rechecks addresses (the published Service may have moved).
                owned.send_replace(Arc::new(served));
                let problems: std::collections::HashSet<String> = problems.into_iter().collect();
                for p in problems.difference(&last_problems) {
                    tracing::warn!("kubernetes: {p}");
                }
                last_problems = problems;
                if shape != last_shape {
                    tracing::info!(
                        generation,
                        routes = shape.0,
                        ingresses = shape.1,
                        "routes rebuilt from the cluster"
                    );
                    last_shape = shape;
                } else {
                    tracing::debug!(generation, "routes rebuilt from the cluster");
                }
                if !*ready.borrow() {
                    let _ = ready.send(true);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a rebuild failed; the current routes keep serving")
            }
        }
        // What the rebuild freed (the old table once its last reader lets
        // go, the objects the watches replaced) back to the kernel; here,
        // on the discovery thread, rather than on the config thread, whose
        // low priority could leave it preempted holding an arena's lock.
        crate::memory::trim();
        changed.notified().await;
        // A change after a quiet spell is rebuilt at once: a pod that turns
        // ready or goes away reaches the traffic in the time of a rebuild,
        // not of a debounce. Changes that follow within the debounce of
        // the last rebuild (a rollout's burst) are gathered into the next
        // one, so a busy cluster costs at most one rebuild per debounce.
        let since = started.elapsed();
        if since < opts.debounce {
            tokio::time::sleep(opts.debounce - since).await;
        }
    }
}

/// Records each new problem as a Warning Event on its object, once: a
/// problem that stays is not recorded again at every rebuild.
///
/// Each Event gets a Recorder of its own: a shared one folds every Event of
/// the same object and reason into one series that keeps the first note
/// (kube's cache key leaves the note out), so a second, different problem
/// would never be seen. The dedup here is what repetition needs.
fn record_events(
    client: &Client,
    reporter: &kube::runtime::events::Reporter,
    events: Vec<translate::Event>,
    last: &mut std::collections::HashSet<(String, String)>,
    tasks: &Tasks,
) {
    let mut now = std::collections::HashSet::new();
    for translate::Event {
        object: reference,
        reason,
        note: message,
    } in events
    {
        let key = (
            reference
                .uid
                .clone()
                .or_else(|| reference.name.clone())
                .unwrap_or_default(),
            message.clone(),
        );
        if !last.contains(&key) {
            let recorder = kube::runtime::events::Recorder::new(client.clone(), reporter.clone());
            tasks.spawn("kubernetes event", async move {
                let ev = kube::runtime::events::Event {
                    type_: kube::runtime::events::EventType::Warning,
                    reason: reason.into(),
                    note: Some(message),
                    action: "Route".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&ev, &reference).await {
                    tracing::debug!(error = %e, "cannot record a Kubernetes Event");
                }
            });
        }
        now.insert(key);
    }
    *last = now;
}

fn namespaced<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Watches one kind into a store; every change wakes the rebuild loop.
fn watch_kind<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
    tasks: &Tasks,
) -> Store<K>
where
    K: Resource
        + slim::Slim
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .backoff(WatchBackoff::default())
        .modify(slim::Slim::slim)
        .reflect(writer);
    drive(stream, kind, changed, metrics, tasks);
    reader
}

/// Watches a kind into a store of `T`, a type of our own each object is
/// converted to as it arrives (the API's object is dropped at once).
fn watch_as<K, T>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
    tasks: &Tasks,
) -> Store<T>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    T: From<K> + reflector::Lookup<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let converted = watcher(api, config)
        .backoff(WatchBackoff::default())
        .map_ok(|event| match event {
            watcher::Event::Apply(k) => watcher::Event::Apply(T::from(k)),
            watcher::Event::Delete(k) => watcher::Event::Delete(T::from(k)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitApply(k) => watcher::Event::InitApply(T::from(k)),
            watcher::Event::InitDone => watcher::Event::InitDone,
        });
    // `reflector` asks only `Lookup` of what it stores (`.reflect` asks a
    // whole `Resource`).
    let stream = reflector::reflector(writer, converted);
    drive(stream, kind, changed, metrics, tasks);
    reader
}

/// How a broken watch is retried: after 100 ms, doubling to at most 1 s,
/// with jitter. kube-runtime's default climbs to 30 s, so after an API
/// server outage (a control-plane upgrade) a rollout would wait up to half
/// a minute to reach traffic; this picks it up within about a second of the
/// API server's return, for one request per watched kind a second while
/// it is away.
#[derive(Debug, Clone)]
struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (now * 2).min(Self::MAX);
        // Between half and all of it: watchers of many replicas do not
        // come back in step.
        Some(now.mul_f64(0.5 + fastrand::f64() / 2.0))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The kinds' pods, metadata only: for `sluice.dev/weight`.
type PodMeta = kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Pod>;

/// Watches pod metadata (not whole pods: a big cluster's pods are large)
/// into a store.
fn watch_pod_metadata(
    client: &Client,
    ns: Option<&str>,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
    tasks: &Tasks,
) -> Store<PodMeta> {
    // An Api of PartialObjectMeta makes metadata-only requests.
    let api: Api<PodMeta> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .backoff(WatchBackoff::default())
        .modify(slim::Slim::slim)
        .reflect(writer);
    drive(stream, "pod", changed, metrics, tasks);
    reader
}

/// Watches every Namespace's metadata (for their labels) into a store.
fn watch_namespaces(
    client: &Client,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
    tasks: &Tasks,
) -> Store<NamespaceMeta> {
    let api: Api<NamespaceMeta> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .backoff(WatchBackoff::default())
        .modify(slim::Slim::slim)
        .reflect(writer);
    drive(stream, "namespace", changed, metrics, tasks);
    reader
}

/// Consumes a watch stream: every change wakes the rebuild loop; errors
/// are counted and logged sparingly.
fn drive<S, K>(
    stream: S,
    kind: &'static str,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
    tasks: &Tasks,
) -> crate::tasks::TaskHandle
where
    S: futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    K: Send + 'static,
{
    let changed = changed.clone();
    let errors = metrics.kube_watch_errors.with_label_values(&[kind]);
    tasks.spawn_discovery("kubernetes watch", async move {
        let mut stream = std::pin::pin!(stream);
        // Errors repeat at each back-off step while the API server is away
        // (or RBAC refuses): the first is logged, then one a minute with a
        // count, and the recovery.
        let mut failing: u64 = 0;
        let mut last_log: Option<tokio::time::Instant> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    if failing > 0 {
                        tracing::info!(kind, errors = failing, "kubernetes watch recovered");
                        failing = 0;
                        last_log = None;
                    }
                    changed.notify_one();
                }
                Err(e) => {
                    errors.inc();
                    failing += 1;
                    if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        last_log = Some(tokio::time::Instant::now());
                        tracing::warn!(kind, error = %e, errors = failing, "kubernetes watch failing; retrying with back-off, the current routes keep serving");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;

    #[test]
    fn a_broken_watch_is_retried_within_a_second_however_long_it_was_away() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = b.by_ref().take(20).collect();
        assert!(delays[0] <= Duration::from_millis(100), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(1)),
            "{delays:?}"
        );
        assert!(delays[19] >= Duration::from_millis(500), "{delays:?}");
        b.reset();
        assert!(b.next().unwrap() <= Duration::from_millis(100));
    }
}
