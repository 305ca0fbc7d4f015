//! Waiting: for a Deployment's rollout (as `kubectl rollout status` judges
//! it) and for a LoadBalancer's address (what `doctl compute load-balancer
//! list` was run again and again for). A rollout that does not finish says
//! why, in the pods' own words.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::progress::Step;

/// How often the cluster is asked again.
const POLL: Duration = Duration::from_millis(500);

/// Where a Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutState {
    pub desired: i64,
    pub updated: i64,
    pub ready: i64,
    pub available: i64,
    /// The controller has seen the latest spec.
    pub observed: bool,
}

impl RolloutState {
    pub fn of(deployment: &Value) -> RolloutState {
        let n = |v: &Value| v.as_i64().unwrap_or(0);
        let spec = &deployment["spec"];
        let status = &deployment["status"];
        let generation = n(&deployment["metadata"]["generation"]);
        RolloutState {
            desired: spec["replicas"].as_i64().unwrap_or(1),
            updated: n(&status["updatedReplicas"]),
            ready: n(&status["readyReplicas"]),
            available: n(&status["availableReplicas"]),
            observed: n(&status["observedGeneration"]) >= generation,
        }
    }

    /// Done as `kubectl rollout status` says: the new spec is observed,
    /// every replica is updated and available, and no old one is left.
    pub fn done(&self, total: i64) -> bool {
        self.observed
            && self.updated >= self.desired
            && total <= self.updated
            && self.available >= self.updated
            && self.ready >= self.desired
    }
}

/// Waits until `ns/name` has rolled out, showing pods ready n/N, or fails
/// after `timeout` with what its pods report.
pub async fn wait_deployment(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    selector: &str,
    timeout: Duration,
    step: &Step,
) -> Result<RolloutState> {
    let deadline = Instant::now() + timeout;
    loop {
        let dep = cluster
            .get("Deployment", Some(ns), name)
            .await?
            .ok_or_else(|| Error::Invalid(format!("Deployment {ns}/{name} is gone")))?;
        let state = RolloutState::of(&dep);
        let total = dep["status"]["replicas"].as_i64().unwrap_or(0);
        step.set_message(format!("pods ready {}/{}", state.ready, state.desired));
        if state.done(total) {
            return Ok(state);
        }
        if Instant::now() >= deadline {
            let reasons = pod_reasons(cluster, ns, selector).await.unwrap_or_default();
            return Err(Error::RolloutTimeout {
                what: format!("Deployment {ns}/{name}"),
                after: timeout,
                summary: format!(
                    "{}/{} pods ready, {} updated",
                    state.ready, state.desired, state.updated
                ),
                reasons,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Why the pods of a selector are not ready: waiting containers'
/// reasons (ImagePullBackOff, CrashLoopBackOff, …) and unschedulable pods,
/// one line per distinct reason.
pub async fn pod_reasons(cluster: &Cluster, ns: &str, selector: &str) -> Result<Vec<String>> {
    let pods = cluster.list("Pod", Some(ns), selector).await?;
    let mut out: Vec<String> = Vec::new();
    for pod in &pods {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("?");
        for line in reasons_of(pod) {
            let line = format!("{pod_name}: {line}");
            if !out
                .iter()
                .any(|l| l.split_once(": ").map(|x| x.1) == line.split_once(": ").map(|x| x.1))
            {
                out.push(line);
            }
        }
    }
    Ok(out)
}

/// The reasons one pod gives for not being ready.
pub fn reasons_of(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let status = &pod["status"];
    for cs in status["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            status["initContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten(),
        )
    {
        let container = cs["name"].as_str().unwrap_or("?");
        if let Some(w) = cs["state"].get("waiting") {
            let reason = w["reason"].as_str().unwrap_or("Waiting");
            let msg = w["message"].as_str().unwrap_or("");
            out.push(join(
                format!("{reason} (container {container})"),
                msg,
                advice(reason),
            ));
        } else if let Some(t) = cs["state"].get("terminated") {
            let reason = t["reason"].as_str().unwrap_or("Terminated");
            let code = t["exitCode"].as_i64().unwrap_or(0);
            out.push(format!(
                "{reason} (container {container}, exit code {code})"
            ));
        }
    }
    for c in status["conditions"].as_array().into_iter().flatten() {
        if c["type"] == "PodScheduled" && c["status"] == "False" {
            let reason = c["reason"].as_str().unwrap_or("Unschedulable");
            let msg = c["message"].as_str().unwrap_or("");
            out.push(join(reason.to_owned(), msg, advice(reason)));
        }
    }
    out
}

fn join(head: String, msg: &str, advice: &str) -> String {
    let mut s = head;
    if !msg.is_empty() {
        s.push_str(": ");
        s.push_str(msg);
    }
    if !advice.is_empty() {
        s.push_str(" — ");
        s.push_str(advice);
    }
    s
}

/// What to do about a reason a user meets often.
fn advice(reason: &str) -> &'static str {
    match reason {
        "ImagePullBackOff" | "ErrImagePull" => {
            "check the image name and tag, and that the namespace has a pull Secret \
             for a private registry (sluice-deploy registry-login, then --pull-secret)"
        }
        "InvalidImageName" => "the image reference is malformed",
        "CrashLoopBackOff" => "the app exits at start: read `kubectl logs` of the pod",
        "CreateContainerConfigError" => "a Secret or ConfigMap the pod names is missing",
        "Unschedulable" => "no node has room: lower --replicas or add nodes",
        _ => "",
    }
}

/// Waits for the LoadBalancer Service `ns/name` to get an address (IP or
/// hostname), spinning meanwhile; `None` after `timeout`.
pub async fn wait_address(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    timeout: Duration,
    step: &Step,
) -> Result<Option<String>> {
    let deadline = Instant::now() + timeout;
    let start = Instant::now();
    loop {
        if let Some(svc) = cluster.get("Service", Some(ns), name).await? {
            if let Some(a) = address_of(&svc) {
                return Ok(Some(a));
            }
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        step.set_message(format!(
            "waiting for the LoadBalancer's address ({}s)",
            start.elapsed().as_secs()
        ));
        tokio::time::sleep(POLL).await;
    }
}

/// The first address in a Service's `status.loadBalancer.ingress`.
pub fn address_of(svc: &Value) -> Option<String> {
    let first = svc["status"]["loadBalancer"]["ingress"].get(0)?;
    first["hostname"]
        .as_str()
        .or(first["ip"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rollout_is_done_when_every_replica_is_new_and_available() {
        let dep = |gen, obs, upd, ready, avail, total| {
            json!({"metadata": {"generation": gen}, "spec": {"replicas": 2},
                "status": {"observedGeneration": obs, "updatedReplicas": upd, "readyReplicas": ready,
                    "availableReplicas": avail, "replicas": total}})
        };
        let s = |d: Value| RolloutState::of(&d).done(d["status"]["replicas"].as_i64().unwrap());
        assert!(s(dep(2, 2, 2, 2, 2, 2)));
        assert!(!s(dep(2, 1, 2, 2, 2, 2)), "old generation observed");
        assert!(!s(dep(2, 2, 1, 2, 2, 3)), "an old pod remains");
        assert!(!s(dep(2, 2, 2, 1, 1, 2)), "one not ready");
    }

    #[test]
    fn pods_say_why_they_are_not_ready() {
        let pod = json!({"status": {
            "containerStatuses": [{"name": "web", "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"x\""}}}],
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu."}]}});
        let r = reasons_of(&pod);
        assert!(
            r[0].starts_with("ImagePullBackOff (container web)"),
            "{r:?}"
        );
        assert!(r[1].contains("Insufficient cpu"), "{r:?}");
    }

    #[test]
    fn the_address_is_a_hostname_or_an_ip() {
        assert_eq!(
            address_of(&json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}})),
            Some("203.0.113.9".into())
        );
        assert_eq!(
            address_of(
                &json!({"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com", "ip": "203.0.113.9"}]}}})
            ),
            Some("lb.example.com".into())
        );
        assert_eq!(address_of(&json!({"status": {"loadBalancer": {}}})), None);
    }
}
