//! One function per subcommand. Each talks to the cluster through
//! [`Cluster`], shows its steps through [`Progress`], and returns an
//! [`Error`] that says what to do.

use std::time::Duration;

use serde_json::Value;

use crate::app::{AppSpec, STRATEGY_ANNOTATION};
use crate::cluster::{describe_obj, Change, Cluster};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::proxy::{self, ProxyOptions};
use crate::rollout;

/// The label selector of the proxy's controller objects.
const PROXY_SELECTOR: &str = "app.kubernetes.io/name=sluice,app.kubernetes.io/component=controller";

/// A Sluice controller found on the cluster.
#[derive(Debug, Clone)]
pub struct Controller {
    pub namespace: String,
    /// Its Deployment (or DaemonSet) name.
    pub name: String,
    /// `sluice-deploy` or `Helm`.
    pub managed_by: String,
    /// Its LoadBalancer Service, if found.
    pub service: Option<Value>,
}

/// The Sluice controller that serves class `sluice`, if any: the
/// IngressClass names the controller, the LoadBalancer Service carries the
/// chart's labels. One installed by `helm install` is found the same way
/// as one installed by `up`.
pub async fn find_controller(cluster: &Cluster) -> Result<Option<Controller>> {
    let Some(class) = cluster
        .get("IngressClass", None, proxy::INGRESS_CLASS)
        .await?
    else {
        return Ok(None);
    };
    let controller = class["spec"]["controller"].as_str().unwrap_or_default();
    if controller != proxy::CONTROLLER {
        return Err(Error::Invalid(format!(
            "IngressClass {} belongs to controller {controller:?}, not Sluice ({}); \
             Ingresses of that class would not reach Sluice",
            proxy::INGRESS_CLASS,
            proxy::CONTROLLER
        )));
    }
    let services = cluster.list("Service", None, PROXY_SELECTOR).await?;
    let service = services
        .into_iter()
        .find(|s| s["spec"]["type"] == "LoadBalancer");
    let (namespace, name) = match &service {
        Some(s) => (
            s["metadata"]["namespace"]
                .as_str()
                .unwrap_or(proxy::NAMESPACE)
                .to_owned(),
            // The chart names its Deployment (or DaemonSet) and Service alike.
            s["metadata"]["name"]
                .as_str()
                .unwrap_or(proxy::NAME)
                .to_owned(),
        ),
        None => (proxy::NAMESPACE.to_owned(), proxy::NAME.to_owned()),
    };
    let managed_by = class["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    Ok(Some(Controller {
        namespace,
        name,
        managed_by,
        service,
    }))
}

/// What `up` is asked to do beyond the app itself.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub proxy: ProxyOptions,
    pub timeout: Duration,
    /// Skip the request through the LoadBalancer at the end.
    pub no_probe: bool,
}

/// What `up` reports at the end.
#[derive(Debug)]
pub struct UpReport {
    pub changed: usize,
    pub address: Option<String>,
}

/// `up`: the proxy (when none serves class `sluice`), the app, the
/// rollouts, the address, and one request through it.
pub async fn up(
    cluster: &Cluster,
    spec: &mut AppSpec,
    opts: &UpOptions,
    progress: &mut Progress,
) -> Result<UpReport> {
    let mut changed = 0;

    // The proxy: found, or installed at the chart's defaults.
    let step = progress.step("Sluice ingress controller");
    let controller = match find_controller(cluster).await? {
        Some(c) => {
            step.ok(format!(
                "found in namespace {} (installed by {}), using it",
                c.namespace, c.managed_by
            ));
            c
        }
        None => {
            step.set_message("none serves class sluice: installing it");
            let mut created = 0;
            for obj in proxy::objects(&opts.proxy) {
                if cluster.apply(&obj).await? != Change::Unchanged {
                    created += 1;
                }
            }
            changed += created;
            step.ok(format!(
                "installed into {} ({created} objects)",
                proxy::NAMESPACE
            ));
            Controller {
                namespace: proxy::NAMESPACE.to_owned(),
                name: proxy::NAME.to_owned(),
                managed_by: proxy::MANAGED_BY.to_owned(),
                service: None,
            }
        }
    };

    // The app's pull Secret must exist before pods ask for it.
    if let Some(secret) = &spec.pull_secret {
        if cluster
            .get("Secret", Some(&spec.namespace), secret)
            .await?
            .is_none()
        {
            return Err(Error::Invalid(format!(
                "--pull-secret {secret}: no such Secret in namespace {}; create it with \
                 `sluice-deploy registry-login --registry NAME --namespace {} --secret-name {secret}`",
                spec.namespace, spec.namespace
            )));
        }
    }

    // The app. Without --replicas, a Deployment keeps the count it has
    // (a `scale` is not undone by the next `up`).
    let step = progress.step(format!("apply {}", spec.name));
    let mut results = Vec::new();
    for obj in spec.objects() {
        let change = cluster.apply(&obj).await?;
        if change != Change::Unchanged {
            changed += 1;
        }
        results.push(format!("{} {}", describe_obj(&obj), change.as_str()));
    }
    step.ok(results.join(", "));

    // Rollouts.
    let step = progress.step(format!("rollout of {}", spec.name));
    let selector = format!("app.kubernetes.io/name={}", spec.name);
    let state = rollout::wait_deployment(
        cluster,
        &spec.namespace,
        &spec.name,
        &selector,
        opts.timeout,
        &step,
    )
    .await;
    match state {
        Ok(s) => step.ok(format!("pods ready {}/{}", s.ready, s.desired)),
        Err(e) => {
            step.fail(failure(&e));
            return Err(e);
        }
    }
    if controller.managed_by == proxy::MANAGED_BY {
        progress.add_step();
        let step = progress.step("rollout of the Sluice proxy");
        let selector = "app.kubernetes.io/name=sluice,app.kubernetes.io/instance=sluice,app.kubernetes.io/component=controller";
        match rollout::wait_deployment(
            cluster,
            &controller.namespace,
            &controller.name,
            selector,
            opts.timeout,
            &step,
        )
        .await
        {
            Ok(s) => step.ok(format!("pods ready {}/{}", s.ready, s.desired)),
            Err(e) => {
                step.fail(failure(&e));
                return Err(e);
            }
        }
    }

    // The LoadBalancer's address.
    let step = progress.step("LoadBalancer address");
    let svc_name = controller
        .service
        .as_ref()
        .and_then(|s| s["metadata"]["name"].as_str())
        .unwrap_or(proxy::NAME)
        .to_owned();
    let address = rollout::wait_address(
        cluster,
        &controller.namespace,
        &svc_name,
        opts.timeout,
        &step,
    )
    .await?;
    match &address {
        Some(a) => step.ok(a),
        None => step.fail(format!(
            "none yet after {}; the cloud may still be creating it: run `sluice-deploy status {}`",
            humantime::format_duration(opts.timeout),
            spec.name
        )),
    }

    if let Some(addr) = &address {
        let svc = cluster
            .get("Service", Some(&controller.namespace), &svc_name)
            .await?;
        let port = svc.as_ref().and_then(http_port).unwrap_or(80);
        let url = url_for(addr, port, &spec.path);
        println!();
        println!("  {} is served at {url}", spec.name);
        println!("  try: {}", curl_line(addr, port, spec));
        if !opts.no_probe {
            match probe(addr, port, spec).await {
                Ok((status, body)) => println!("  one request through it: {status}, {body}"),
                Err(e) => println!("  one request through it failed: {e} (DNS or the LoadBalancer may need a minute)"),
            }
        }
    }
    if changed == 0 {
        println!(
            "  nothing changed: {} was already deployed as asked",
            spec.name
        );
    }
    Ok(UpReport { changed, address })
}

/// The word a failed step ends with.
fn failure(e: &Error) -> &'static str {
    match e {
        Error::RolloutTimeout { .. } => "timed out",
        _ => "failed",
    }
}

/// The Service's `http` port.
fn http_port(svc: &Value) -> Option<u16> {
    svc["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "http")
        .and_then(|p| p["port"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

fn url_for(addr: &str, port: u16, path: &str) -> String {
    let host = if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    };
    if port == 80 {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}:{port}{path}")
    }
}

fn curl_line(addr: &str, port: u16, spec: &AppSpec) -> String {
    let url = url_for(addr, port, &spec.path);
    match &spec.host {
        Some(h) if !h.starts_with("*.") => format!("curl -H 'Host: {h}' {url}"),
        Some(h) => format!("curl -H 'Host: app{}' {url}", &h[1..]),
        None => format!("curl {url}"),
    }
}

/// One GET through the LoadBalancer: the status and the start of the body.
/// A new Ingress takes the controller a moment to pick up, and a new
/// LoadBalancer a moment to pass traffic, so 404, 502, 503 and connection
/// errors are asked again for up to twenty seconds.
async fn probe(
    addr: &str,
    port: u16,
    spec: &AppSpec,
) -> std::result::Result<(u16, String), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = probe_once(addr, port, spec).await;
        let again = match &r {
            Ok((code, _)) => matches!(code, 404 | 502 | 503),
            Err(_) => true,
        };
        if !again || std::time::Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn probe_once(
    addr: &str,
    port: u16,
    spec: &AppSpec,
) -> std::result::Result<(u16, String), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.get(url_for(addr, port, &spec.path));
    if let Some(h) = &spec.host {
        let h = if let Some(rest) = h.strip_prefix("*.") {
            format!("app.{rest}")
        } else {
            h.clone()
        };
        req = req.header("host", h);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| crate::error::source_chain(&e))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let mut line: String = body.trim().chars().take(120).collect();
    if line.is_empty() {
        line = "(empty body)".into();
    }
    Ok((status, line))
}

/// `scale APP --replicas N`: a merge patch of `spec.replicas`, then the
/// rollout.
pub async fn scale(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    replicas: u32,
    timeout: Duration,
    progress: &mut Progress,
) -> Result<()> {
    let step = progress.step(format!("scale {name} to {replicas}"));
    if cluster.get("Deployment", Some(ns), name).await?.is_none() {
        step.fail("not found");
        return Err(Error::Invalid(format!(
            "no Deployment {ns}/{name}; deploy it first with `sluice-deploy up --name {name} …`"
        )));
    }
    cluster.scale(ns, name, replicas).await?;
    step.ok("");
    let step = progress.step(format!("rollout of {name}"));
    let selector = format!("app.kubernetes.io/name={name}");
    match rollout::wait_deployment(cluster, ns, name, &selector, timeout, &step).await {
        Ok(s) => {
            step.ok(format!("pods ready {}/{}", s.ready, s.desired));
            Ok(())
        }
        Err(e) => {
            step.fail(failure(&e));
            Err(e)
        }
    }
}

/// One app as `status` reports it.
#[derive(Debug, serde::Serialize)]
pub struct AppStatus {
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub replicas: i64,
    pub ready: i64,
    /// Ready endpoints in the Service's EndpointSlices: what Sluice
    /// balances over.
    pub endpoints: usize,
    pub strategy: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
}

/// The proxy as `status` reports it.
#[derive(Debug, serde::Serialize)]
pub struct ProxyStatus {
    pub namespace: String,
    pub installed_by: String,
    pub replicas: i64,
    pub ready: i64,
    pub healthy: bool,
    pub address: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub apps: Vec<AppStatus>,
    pub proxy: Option<ProxyStatus>,
}

/// `status [APP]`: the apps this tool deployed in `ns` (or the one named),
/// and the proxy.
pub async fn status(cluster: &Cluster, ns: &str, name: Option<&str>) -> Result<Status> {
    let deployments = match name {
        Some(n) => match cluster.get("Deployment", Some(ns), n).await? {
            Some(d) => vec![d],
            None => {
                return Err(Error::Invalid(format!(
                    "no app {n} in namespace {ns} (no Deployment of that name)"
                )))
            }
        },
        None => cluster
            .list(
                "Deployment",
                Some(ns),
                &format!("app.kubernetes.io/managed-by={}", proxy::MANAGED_BY),
            )
            .await?
            .into_iter()
            .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] != "controller")
            .collect(),
    };
    let mut apps = Vec::new();
    for d in deployments {
        let app = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let state = rollout::RolloutState::of(&d);
        let slices = cluster
            .list(
                "EndpointSlice",
                Some(ns),
                &format!("kubernetes.io/service-name={app}"),
            )
            .await?;
        let endpoints = slices
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"].as_bool().unwrap_or(true))
            .count();
        let ingress = cluster.get("Ingress", Some(ns), &app).await?;
        let rule = ingress.as_ref().map(|i| i["spec"]["rules"][0].clone());
        apps.push(AppStatus {
            image: d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            replicas: state.desired,
            ready: state.ready,
            endpoints,
            strategy: ingress
                .as_ref()
                .and_then(|i| i["metadata"]["annotations"][STRATEGY_ANNOTATION].as_str())
                .map(str::to_owned)
                .or_else(|| ingress.as_ref().map(|_| "round-robin".to_owned())),
            host: rule
                .as_ref()
                .and_then(|r| r["host"].as_str())
                .map(str::to_owned),
            path: rule
                .as_ref()
                .and_then(|r| r["http"]["paths"][0]["path"].as_str())
                .map(str::to_owned),
            namespace: ns.to_owned(),
            name: app,
        });
    }
    let proxy = match find_controller(cluster).await? {
        None => None,
        Some(c) => {
            // The chart's Deployment, or its DaemonSet.
            let dep = match cluster
                .get("Deployment", Some(&c.namespace), &c.name)
                .await?
            {
                Some(d) => Some(d),
                None => {
                    cluster
                        .get("DaemonSet", Some(&c.namespace), &c.name)
                        .await?
                }
            };
            let (replicas, ready) = dep
                .as_ref()
                .map(|d| {
                    if d["kind"] == "DaemonSet" {
                        let n = |f: &str| d["status"][f].as_i64().unwrap_or(0);
                        (n("desiredNumberScheduled"), n("numberReady"))
                    } else {
                        let s = rollout::RolloutState::of(d);
                        (s.desired, s.ready)
                    }
                })
                .unwrap_or((0, 0));
            Some(ProxyStatus {
                address: c.service.as_ref().and_then(rollout::address_of),
                healthy: dep.is_some() && ready > 0,
                namespace: c.namespace,
                installed_by: c.managed_by,
                replicas,
                ready,
            })
        }
    };
    Ok(Status { apps, proxy })
}

/// `status` as text.
pub fn print_status(s: &Status) {
    if s.apps.is_empty() {
        println!("no apps deployed by sluice-deploy here");
    }
    for a in &s.apps {
        println!("{}/{}", a.namespace, a.name);
        println!("  image:     {}", a.image);
        println!("  replicas:  {}/{} ready", a.ready, a.replicas);
        println!("  endpoints: {} ready", a.endpoints);
        if let Some(st) = &a.strategy {
            println!("  strategy:  {st}");
        }
        println!(
            "  route:     {}{}",
            a.host.as_deref().unwrap_or("(any host)"),
            a.path.as_deref().unwrap_or("")
        );
    }
    match &s.proxy {
        None => println!("proxy: not installed (sluice-deploy up installs it)"),
        Some(p) => {
            println!(
                "proxy: {} in {} ({}/{} ready, installed by {})",
                if p.healthy { "healthy" } else { "NOT READY" },
                p.namespace,
                p.ready,
                p.replicas,
                p.installed_by
            );
            println!(
                "  address: {}",
                p.address
                    .as_deref()
                    .unwrap_or("(none yet: the LoadBalancer is being created)")
            );
        }
    }
}

/// `down APP`: removes the app's Ingress, Service and Deployment;
/// `with_proxy` also removes a proxy this tool installed.
pub async fn down(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    with_proxy: bool,
    progress: &mut Progress,
) -> Result<()> {
    let step = progress.step(format!("remove {name}"));
    // Only what sluice-deploy made: an Ingress, Service or Deployment of the
    // same name from elsewhere is left alone, and named.
    let mut removed = Vec::new();
    let mut foreign = Vec::new();
    for kind in ["Ingress", "Service", "Deployment"] {
        let Some(obj) = cluster.get(kind, Some(ns), name).await? else {
            continue;
        };
        if obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] != proxy::MANAGED_BY {
            foreign.push(kind);
            continue;
        }
        if cluster.delete(kind, Some(ns), name).await? {
            removed.push(kind);
        }
    }
    if !foreign.is_empty() {
        step.fail("not made by sluice-deploy");
        return Err(Error::Invalid(format!(
            "{} {ns}/{name} {} not made by sluice-deploy: left alone{}",
            foreign.join(", "),
            if foreign.len() == 1 { "was" } else { "were" },
            if removed.is_empty() {
                String::new()
            } else {
                format!(" (deleted {})", removed.join(", "))
            }
        )));
    }
    if removed.is_empty() {
        step.ok(format!(
            "nothing to remove: no app {name} in namespace {ns}"
        ));
    } else {
        step.ok(format!("deleted {}", removed.join(", ")));
    }
    if with_proxy {
        let step = progress.step("remove the Sluice proxy");
        match find_controller(cluster).await? {
            None => step.ok("not installed"),
            Some(c) if c.managed_by != proxy::MANAGED_BY => {
                step.fail("installed by another tool");
                return Err(Error::Invalid(format!(
                    "the Sluice proxy in {} was installed by {}, not sluice-deploy; remove it the \
                     same way (for Helm: `helm uninstall sluice --namespace {}`)",
                    c.namespace, c.managed_by, c.namespace
                )));
            }
            Some(_) => {
                // Other apps' Ingresses would lose their controller.
                let users: Vec<String> = cluster
                    .list("Ingress", None, "")
                    .await?
                    .iter()
                    .filter(|i| i["spec"]["ingressClassName"] == proxy::INGRESS_CLASS)
                    .map(|i| {
                        format!(
                            "{}/{}",
                            i["metadata"]["namespace"].as_str().unwrap_or_default(),
                            i["metadata"]["name"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                if !users.is_empty() {
                    step.fail("still in use");
                    return Err(Error::Invalid(format!(
                        "the Sluice proxy still serves {}: remove those first (sluice-deploy down APP)",
                        users.join(", ")
                    )));
                }
                let mut n = 0;
                for obj in proxy::objects(&ProxyOptions::default()).iter().rev() {
                    let kind = obj["kind"].as_str().unwrap_or_default();
                    let ns = obj["metadata"]["namespace"].as_str();
                    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                    if cluster.delete(kind, ns, name).await? {
                        n += 1;
                    }
                }
                step.ok(format!("deleted {n} objects"));
            }
        }
    }
    Ok(())
}

/// `render`: the YAML `up` would apply, one document per object.
pub fn render(app: Option<&AppSpec>, proxy: Option<&ProxyOptions>) -> String {
    let mut objs: Vec<Value> = Vec::new();
    if let Some(p) = proxy {
        objs.extend(proxy::objects(p));
    }
    if let Some(a) = app {
        objs.extend(a.objects());
    }
    let mut out = String::new();
    for o in objs {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&o).unwrap_or_default());
    }
    out
}
