"""The Kubernetes manifests of scripts/kubegen.py, as kustomize renders them: the kit's
policies (probes, limits, locked-down pods, secrets by reference only) and who may
reach whom, compared with what the service graph says.

Reachability is decided by a small evaluator of NetworkPolicy semantics (a pod is
isolated in a direction once a policy selects it for that direction; then a peer is
allowed when some rule of some selecting policy matches it and the port), over every
pair of the kit's pods plus the ingress controller, a stranger pod in the namespace and
one in another namespace. The expected answer comes from the pyproject files alone.

Rendering needs kustomize or kubectl on PATH (every machine of this project has kubectl);
without one the rendered cases skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import kubegen  # noqa: E402

from harness import Workspace  # noqa: E402

TREES = ["overlays/local", "overlays/production"]
OAUTH_VARIABLES = {
    f"AUTH_{provider}_{setting}"
    for provider in ("GOOGLE", "GITHUB")
    for setting in ("CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI")
}


@cache
def rendered(tree: str) -> tuple[dict[str, Any], ...]:
    if kubegen.kustomize_command() is None:
        if os.environ.get("CI"):
            pytest.fail("neither kustomize nor kubectl on PATH: the manifests cannot be rendered")
        pytest.skip("neither kustomize nor kubectl on PATH (install kubectl)")
    return tuple(kubegen.render(ROOT / kubegen.TREE / tree))


def of_kind(resources: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


# --- the service graph, read from the pyproject files alone -------------------------------


@dataclass(frozen=True)
class Facts:
    port: int
    http: bool
    calls: frozenset[str]


def graph() -> dict[str, Facts]:
    facts = {}
    for pyproject in sorted(ROOT.glob("services/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())
        service = project["tool"]["kit"]["service"]
        http = "http-port" in service
        port = service["http-port"] if http else service["grpc-port"]
        facts[project["project"]["name"]] = Facts(port, http, frozenset(service.get("calls", {})))
    return facts


GRAPH = graph()
SERVICES = sorted(GRAPH)


# --- policies on every Deployment ---------------------------------------------------------


def deployment_cases() -> list[Any]:
    return [pytest.param(tree, name, id=f"{tree}-{name}") for tree in TREES for name in SERVICES]


def deployment(tree: str, name: str) -> dict[str, Any]:
    (found,) = (d for d in of_kind(rendered(tree), "Deployment") if d["metadata"]["name"] == name)
    return found


def test_every_service_has_a_deployment_and_nothing_else_runs() -> None:
    for tree in TREES:
        names = sorted(d["metadata"]["name"] for d in of_kind(rendered(tree), "Deployment"))
        assert names == SERVICES, tree


@pytest.mark.parametrize(("tree", "name"), deployment_cases())
def test_the_pod_is_locked_down(tree: str, name: str) -> None:
    pod = deployment(tree, name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # else GATEWAY_PORT=tcp://... breaks settings
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert not context.get("privileged", False)


@pytest.mark.parametrize(("tree", "name"), deployment_cases())
def test_requests_and_limits_for_cpu_and_memory(tree: str, name: str) -> None:
    for container in deployment(tree, name)["spec"]["template"]["spec"]["containers"]:
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}, (bound, container)


@pytest.mark.parametrize(("tree", "name"), deployment_cases())
def test_probes_ask_the_service_itself(tree: str, name: str) -> None:
    """gRPC services: the native gRPC probe (grpc.health.v1) on their port; the gateway:
    HTTP GET /healthz on its port."""
    (container,) = deployment(tree, name)["spec"]["template"]["spec"]["containers"]
    facts = GRAPH[name]
    assert [p["containerPort"] for p in container["ports"]] == [facts.port]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if facts.http:
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
        else:
            assert container[probe]["grpc"] == {"port": facts.port}


@pytest.mark.parametrize(("tree", "name"), deployment_cases())
def test_the_grace_period_covers_the_drain(tree: str, name: str) -> None:
    """The kubelet's SIGKILL comes after the pre-stop pause, the service's own shutdown
    grace (as its ConfigMap sets it) and the export of the last spans."""
    resources = rendered(tree)
    pod = deployment(tree, name)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (config_ref,) = container["envFrom"]
    (config,) = (
        c
        for c in of_kind(resources, "ConfigMap")
        if c["metadata"]["name"] == config_ref["configMapRef"]["name"]
    )
    grace = float(config["data"][f"{name.upper()}_SHUTDOWN_GRACE_SECONDS"])
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pause + grace + kubegen.SPAN_FLUSH_SECONDS


@pytest.mark.parametrize(("tree", "name"), deployment_cases())
def test_each_pod_names_its_spans(tree: str, name: str) -> None:
    """service.instance.id is the pod's name: a trace shows which replica answered."""
    (container,) = deployment(tree, name)["spec"]["template"]["spec"]["containers"]
    env = [(e["name"], e.get("value"), e.get("valueFrom")) for e in container["env"]]
    pod_name = ("POD_NAME", None, {"fieldRef": {"fieldPath": "metadata.name"}})
    instance = ("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=$(POD_NAME)", None)
    assert pod_name in env
    assert instance in env
    assert env.index(pod_name) < env.index(instance)  # $(VAR) sees only earlier ones


@pytest.mark.parametrize(("tree", "name"), deployment_cases())
def test_secrets_only_by_reference(tree: str, name: str) -> None:
    """No value of a secret in a manifest: the database URL and the OAuth credentials come
    from secretKeyRef, and no ConfigMap holds a name that looks like a secret."""
    resources = rendered(tree)
    (container,) = deployment(tree, name)["spec"]["template"]["spec"]["containers"]
    from_secrets = {
        e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    literal = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    assert literal == {"OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=$(POD_NAME)"}
    expected = set() if GRAPH[name].http else {f"{name.upper()}_DATABASE_URL"}
    if name == "auth":
        expected |= OAUTH_VARIABLES
    assert from_secrets == expected
    assert not of_kind(resources, "Secret")
    for config in of_kind(resources, "ConfigMap"):
        for key in config["data"]:
            assert not any(word in key for word in ("SECRET", "PASSWORD", "DATABASE_URL")), key


def test_the_oauth_secret_names_the_variables_auth_reads() -> None:
    from auth.oauth import GitHubSettings, GoogleSettings

    read = {p.env_var(f) for p in (GoogleSettings, GitHubSettings) for f in p.REQUIRED}
    assert read == OAUTH_VARIABLES


def test_the_callee_addresses_are_the_services() -> None:
    """Each `calls` setting is the callee's Service name and port."""
    workspace = Workspace.read(ROOT)
    data = {
        c["metadata"]["name"].rsplit("-", 1)[0]: c["data"]
        for c in of_kind(rendered("overlays/production"), "ConfigMap")
    }
    for member in workspace.members.values():
        for callee, setting in member.calls.items():
            assert data[f"{member.name}-config"][setting] == f"{callee}:{GRAPH[callee].port}"


# --- who may reach whom -------------------------------------------------------------------

INGRESS_CONTROLLER = "ingress-controller"
STRANGER = "stranger"  # any other pod of the namespace
OUTSIDER = "outsider"  # a pod of another namespace


@dataclass(frozen=True)
class Pod:
    namespace_labels: Mapping[str, str]
    labels: Mapping[str, str]


def pods() -> dict[str, Pod]:
    home = {"kubernetes.io/metadata.name": kubegen.NAMESPACE}
    found = {name: Pod(home, {kubegen.NAME_LABEL: name}) for name in SERVICES}
    found[INGRESS_CONTROLLER] = Pod(
        {"kubernetes.io/metadata.name": kubegen.INGRESS_NAMESPACE}, kubegen.INGRESS_POD_LABELS
    )
    found[STRANGER] = Pod(home, {kubegen.NAME_LABEL: "something-else"})
    found[OUTSIDER] = Pod({"kubernetes.io/metadata.name": "elsewhere"}, {})
    return found


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"the evaluator knows matchLabels only: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def peer_matches(peer: Mapping[str, Any], pod: Pod, policy_namespace: Mapping[str, str]) -> bool:
    assert "ipBlock" not in peer or len(peer) == 1
    if "ipBlock" in peer:
        return False  # the kit's pods are addressed by selectors, never by IP blocks
    if "namespaceSelector" in peer:
        namespace_ok = matches(peer["namespaceSelector"], pod.namespace_labels)
    else:  # a podSelector alone means the policy's own namespace
        namespace_ok = pod.namespace_labels == policy_namespace
    pod_ok = matches(peer.get("podSelector", {}), pod.labels)
    return namespace_ok and pod_ok


def allowed(
    policies: list[dict[str, Any]], direction: str, subject: Pod, peer: Pod, port: int
) -> bool:
    """Whether ``subject`` lets ``peer`` talk to it on ``port`` (direction Ingress) or may
    itself talk to ``peer`` on ``port`` (Egress), under ``policies`` of the namespace."""
    home = {"kubernetes.io/metadata.name": kubegen.NAMESPACE}
    if subject.namespace_labels != home:
        return True  # not our namespace: our policies do not apply to it
    selecting = [
        p
        for p in policies
        if matches(p["spec"]["podSelector"], subject.labels)
        and direction in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True  # not isolated
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(rules_key, []):
            port_ok = not rule.get("ports") or any(
                p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in rule["ports"]
            )
            peers = rule.get(peers_key)
            peer_ok = not peers or any(peer_matches(q, peer, home) for q in peers)
            if port_ok and peer_ok:
                return True
    return False


def reachable(policies: list[dict[str, Any]], source: str, target: str) -> bool:
    """A TCP connection from ``source`` to ``target``'s service port: the source's egress
    and the target's ingress must both allow it."""
    everyone = pods()
    port = GRAPH[target].port
    return allowed(policies, "Egress", everyone[source], everyone[target], port) and allowed(
        policies, "Ingress", everyone[target], everyone[source], port
    )


def expected_callers(target: str) -> set[str]:
    callers = {name for name, facts in GRAPH.items() if target in facts.calls}
    return callers | ({INGRESS_CONTROLLER} if GRAPH[target].http else set())


def reachability_cases() -> list[Any]:
    return [
        pytest.param(source, target, id=f"{source}->{target}")
        for target in SERVICES
        for source in [*SERVICES, INGRESS_CONTROLLER, STRANGER, OUTSIDER]
        if source != target
    ]


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize(("source", "target"), reachability_cases())
def test_a_service_is_reachable_from_its_callers_only(tree: str, source: str, target: str) -> None:
    policies = of_kind(rendered(tree), "NetworkPolicy")
    assert reachable(policies, source, target) == (source in expected_callers(target))


def test_the_evaluator_sees_an_opening_and_a_closed_call() -> None:
    """The reachability check can fail both ways: an allow-all ingress rule on the user
    service (with the namespace-wide policies gone, so the stranger may send) lets it in;
    the gateway's egress rule to user removed, the gateway cannot call user."""
    policies = of_kind(rendered("overlays/production"), "NetworkPolicy")
    assert not reachable(policies, STRANGER, "user")
    assert reachable(policies, "gateway", "user")
    opened = [
        p
        for p in json.loads(json.dumps(policies))
        if p["metadata"]["name"] not in {"default-deny", "dns"}
    ]
    (user,) = (p for p in opened if p["metadata"]["name"] == "user")
    user["spec"]["ingress"].append({})
    assert reachable(opened, STRANGER, "user")
    closed = json.loads(json.dumps(policies))
    (gateway,) = (p for p in closed if p["metadata"]["name"] == "gateway")
    gateway["spec"]["egress"] = [
        rule
        for rule in gateway["spec"]["egress"]
        if {"podSelector": {"matchLabels": {kubegen.NAME_LABEL: "user"}}} not in rule.get("to", [])
    ]
    assert not reachable(closed, "gateway", "user")


@pytest.mark.parametrize("tree", TREES)
def test_outside_the_graph_each_service_reaches_dns_its_database_and_the_collector(
    tree: str,
) -> None:
    """Egress beyond the kit's pods: DNS for every pod, Postgres for the services with a
    database, HTTPS to the internet for auth alone (OAuth), OTLP to the collector."""
    policies = {p["metadata"]["name"]: p for p in of_kind(rendered(tree), "NetworkPolicy")}
    assert policies["default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    (dns_rule,) = policies["dns"]["spec"]["egress"]
    assert {(p["protocol"], p["port"]) for p in dns_rule["ports"]} == {("UDP", 53), ("TCP", 53)}
    for name in SERVICES:
        outside = [
            rule
            for rule in policies[name]["spec"]["egress"]
            if not any("podSelector" in peer and len(peer) == 1 for peer in rule.get("to", []))
        ]
        ports = sorted(p["port"] for rule in outside for p in rule["ports"])
        expected = [kubegen.OTLP_PORT]
        if not GRAPH[name].http:
            expected.append(kubegen.POSTGRES_PORT)
        if name == "auth":
            expected.append(kubegen.HTTPS_PORT)
        assert ports == sorted(expected), name


@pytest.mark.parametrize("tree", TREES)
def test_calls_spread_over_the_replicas_of_a_grpc_service(tree: str) -> None:
    """A gRPC service's name resolves to every ready pod (headless), and its callers come
    back to resolve it again at least every MAX_CONNECTION_AGE_SECONDS (the callee closes
    older connections): with the callers' round-robin channels, every replica gets calls."""
    resources = rendered(tree)
    services = {s["metadata"]["name"]: s["spec"] for s in of_kind(resources, "Service")}
    configs = {
        c["metadata"]["name"].rsplit("-", 1)[0]: c["data"] for c in of_kind(resources, "ConfigMap")
    }
    for name in SERVICES:
        if GRAPH[name].http:
            assert "clusterIP" not in services[name]
            continue
        assert services[name]["clusterIP"] == "None"
        (port,) = services[name]["ports"]
        # no cluster IP, no port translation: callers dial the pod's own port
        assert port["port"] == GRAPH[name].port
        age = configs[f"{name}-config"][f"{name.upper()}_MAX_CONNECTION_AGE_SECONDS"]
        assert float(age) == kubegen.MAX_CONNECTION_AGE_SECONDS


def test_the_gateway_ingress_goes_through_traefik() -> None:
    (ingress,) = of_kind(rendered("overlays/production"), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"]["name"] == "gateway"


@pytest.mark.parametrize(
    ("tree", "replicas", "extra_kinds"),
    [
        ("overlays/local", 1, set()),
        ("overlays/production", 2, {"PodDisruptionBudget", "HorizontalPodAutoscaler"}),
    ],
    ids=["local", "production"],
)
def test_overlays(tree: str, replicas: int, extra_kinds: set[str]) -> None:
    resources = rendered(tree)
    assert {d["spec"]["replicas"] for d in of_kind(resources, "Deployment")} == {replicas}
    kinds = {r["kind"] for r in resources}
    assert kinds >= extra_kinds
    assert not ({"PodDisruptionBudget", "HorizontalPodAutoscaler"} - extra_kinds) & kinds
    assert {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"} == {
        kubegen.NAMESPACE
    }
    for autoscaler in of_kind(resources, "HorizontalPodAutoscaler"):
        assert autoscaler["spec"]["minReplicas"] == replicas


@pytest.mark.parametrize("tree", TREES)
def test_one_gateway_process_per_pod(tree: str) -> None:
    """Replicas scale the gateway; GATEWAY_WORKERS=auto would count the node's CPUs."""
    (config,) = (
        c
        for c in of_kind(rendered(tree), "ConfigMap")
        if c["metadata"]["name"].startswith("gateway-")
    )
    assert config["data"]["GATEWAY_WORKERS"] == "1"


def test_local_images_are_the_ones_images_py_tags() -> None:
    images = {
        c["image"]
        for d in of_kind(rendered("overlays/local"), "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"kit/{name}:local" for name in SERVICES}


# --- schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", kubegen.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("tree", ["base", *TREES])
def test_every_resource_is_valid_against_the_schemas(tree: str, version: str) -> None:
    assert kubegen.schema_problems(rendered(tree), version) == []


def test_a_misspelt_field_is_caught() -> None:
    broken = json.loads(json.dumps(deployment("overlays/local", "user")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    (problem,) = kubegen.schema_problems([broken], kubegen.KUBERNETES_VERSIONS[0])
    assert "Deployment/user" in problem
    assert "readinesProbe" in problem


# --- the generator itself -----------------------------------------------------------------


def test_the_tree_is_fresh_and_generation_is_deterministic() -> None:
    workspace = Workspace.read(ROOT)
    first = kubegen.expected_files(workspace)
    assert kubegen.expected_files(workspace) == first
    for path, content in first.items():
        assert path.read_text() == content, f"{path} is stale: run scripts/kubegen.py"


def test_release_writes_an_overlay_with_the_pushed_images(tmp_path: Path) -> None:
    build = tmp_path / "images.json"
    build.write_text(json.dumps([{"service": n, "tag": f"kit/{n}:0123456789ab"} for n in SERVICES]))
    output = tmp_path / "release"
    status = kubegen.main([
        "release", "--registry", "registry.example.com/kit/", "--images", str(build),
        "--output", str(output),
    ])  # fmt: skip
    assert status == 0
    if kubegen.kustomize_command() is None:
        pytest.skip("neither kustomize nor kubectl on PATH")
    images = {
        c["image"]
        for d in of_kind(tuple(kubegen.render(output)), "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"registry.example.com/kit/{name}:0123456789ab" for name in SERVICES}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            '[{"service": "user", "tag": "kit/user:abc"}]',
            "has no image for ['auth', 'dummy', 'gateway']",
        ),
        ('{"user": "kit/user:abc"}', "not the output of `scripts/images.py build --json`"),
        ("built kit/user:abc", "not the output of `scripts/images.py build --json`"),
    ],
    ids=["a-service-missing", "not-a-list", "not-json"],
)
def test_release_refuses_a_build_it_cannot_deploy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    build = tmp_path / "images.json"
    build.write_text(content)
    status = kubegen.main(
        ["release", "--registry", "r.example", "--images", str(build), "--output", str(tmp_path)]
    )
    assert status == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "kustomization.yaml").exists()


def test_a_site_overlay_over_production_sets_its_own_settings(tmp_path: Path) -> None:
    """The README's example: a ConfigMap merge over production keeps the rest."""
    production = ROOT / kubegen.TREE / "overlays" / "production"
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources: [{os.path.relpath(production, tmp_path)}]\n"
        "configMapGenerator:\n"
        "  - name: gateway-config\n"
        "    behavior: merge\n"
        "    literals:\n"
        "      - GATEWAY_PUBLIC_BASE_URL=https://api.example.com\n"
        '      - GATEWAY_CORS_ORIGINS=["https://app.example.com"]\n'
    )
    rendered(TREES[0])  # skips without kustomize or kubectl
    resources = tuple(kubegen.render(tmp_path))
    (config,) = (
        c for c in of_kind(resources, "ConfigMap") if c["metadata"]["name"].startswith("gateway-")
    )
    assert config["data"]["GATEWAY_PUBLIC_BASE_URL"] == "https://api.example.com"
    assert config["data"]["GATEWAY_CORS_ORIGINS"] == '["https://app.example.com"]'
    assert config["data"]["GATEWAY_ENVIRONMENT"] == "production"
    (gateway,) = (d for d in of_kind(resources, "Deployment") if d["metadata"]["name"] == "gateway")
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]


def test_the_readme_draws_the_graph_the_policies_allow() -> None:
    """README's "Deploying to Kubernetes" shows `kubegen.py graph`: kept in step."""
    graph = kubegen.policy_graph(kubegen.read_services(Workspace.read(ROOT)))
    readme = (ROOT / "README.md").read_text()
    marker = "$ uv run python scripts/kubegen.py graph    # read from the generated policies\n"
    assert marker in readme
    drawn = readme.split(marker, 1)[1].split("```", 1)[0].splitlines()
    assert drawn == graph, "README's graph is stale: paste `python scripts/kubegen.py graph`"
    callers = {line for line in graph if "──▶" in line and line.split(" ──")[0] in GRAPH}
    expected = {
        f"{caller} ──{GRAPH[callee].port}──▶ {callee}"
        for caller, facts in GRAPH.items()
        for callee in facts.calls
    }
    assert expected <= callers
