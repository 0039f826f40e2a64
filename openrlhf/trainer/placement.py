"""The placement plan: which node every policy rank, reference rank and vLLM engine goes to, and
what it reserves there. Actors are launched from it (`PlacementPlan.rank_placement` ->
`ray_utils.actor_options`), so `describe()` prints the resources they are started with.

`plan_placement` is a pure function. It reads the layout flags of a config (any object with the
attributes below: a `KnowRLConfig`, or a `SimpleNamespace` in tests) and, when known, the alive
nodes of the Ray cluster, and either returns a `PlacementPlan` or raises `LayoutError` with one
line that names what does not fit and how to fix it. Nothing is started, so a bad layout is
refused before any actor waits forever for resources Ray cannot give it.

Layout attributes read: actor_num_nodes, actor_num_gpus_per_node, ref_num_nodes,
ref_num_gpus_per_node, vllm_num_engines, vllm_tensor_parallel_size, colocate_all_models and
needs_reference (when absent, `init_kl_coef > 0`, and when that is absent too, True).

Rules, all on the flags as given (none is added for taste):

* every count is at least 1;
* GPU: the policy group is `actor_num_gpus_per_node` GPUs on each of `actor_num_nodes` distinct
  nodes, the reference group likewise with its own flags, and each vLLM engine takes
  `vllm_tensor_parallel_size` GPUs on one node (engines may share a node with each other and with
  the other groups). Each GPU rank reserves `{"GPU": 1, "CPU": 1}` (an engine with TP N: N such
  bundles, launched as one placement group on its node), so a node offers min(GPUs, CPUs) places. The groups are packed node by node, largest per-node request first,
  preferring the fullest node that still fits; if that greedy order fails an exhaustive search
  over the nodes' free counts runs before a layout is refused, so a layout that fits is never
  refused;
* GPU with `colocate_all_models` is refused (sharing GPUs between the groups is not implemented);
* CPU (`use_gpu=False`): TP must be 1, and a group may not ask for more nodes than the cluster
  has. CPU ranks time-share the cores, so any number may share a node and each reserves
  `{"CPU": 0}`. Colocation changes nothing on CPU, where everything already shares the cores;
* `cluster=None` means the cluster is unknown: only the rules that need no cluster are checked
  (counts, colocation on GPU, TP on CPU), no node is assigned, and `describe()` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from openrlhf.utils.ray_utils import CPU_RANK_BUNDLE, GPU_RANK_BUNDLE, RankPlacement

GROUPS = ("policy", "reference", "vllm")
FLAGS = {
    "policy": ("--actor_num_nodes", "--actor_num_gpus_per_node"),
    "reference": ("--ref_num_nodes", "--ref_num_gpus_per_node"),
    "vllm": ("--vllm_num_engines", "--vllm_tensor_parallel_size"),
}


class LayoutError(ValueError):
    """A layout that cannot be placed; the message is one line: the problem, then the fix."""


@dataclass(frozen=True)
class NodeResources:
    """One alive Ray node: whole GPUs and CPUs it offers, its IP and Ray NodeID ("" if unknown)."""

    gpus: int
    cpus: int
    address: str = ""
    node_id: str = ""          # Ray's NodeID, for pinning actors to the planned node

    @property
    def gpu_places(self) -> int:
        """GPU ranks this node can host: each reserves one GPU and one CPU."""
        return min(self.gpus, self.cpus)


@dataclass(frozen=True)
class ClusterResources:
    """The alive nodes of a Ray cluster, in the order Ray lists them (node index = position)."""

    nodes: tuple[NodeResources, ...]

    @classmethod
    def from_ray_nodes(cls, ray_nodes: list[dict]) -> ClusterResources:
        """Build from `ray.nodes()`: alive nodes only, in the order Ray lists them."""
        nodes = []
        for entry in ray_nodes:
            if not entry.get("Alive", entry.get("alive", False)):
                continue
            resources = entry.get("Resources") or {}
            nodes.append(NodeResources(gpus=int(resources.get("GPU", 0)), cpus=int(resources.get("CPU", 0)),
                                       address=str(entry.get("NodeManagerAddress", "")),
                                       node_id=str(entry.get("NodeID", ""))))
        return cls(tuple(nodes))

    @classmethod
    def uniform(cls, num_nodes: int, gpus: int, cpus: int) -> ClusterResources:
        """`num_nodes` identical nodes with `gpus` GPUs and `cpus` CPUs each, no ids (for planning
        against a cluster that is not running)."""
        return cls(tuple(NodeResources(gpus, cpus) for _ in range(num_nodes)))

    @property
    def total_gpus(self) -> int:
        """GPUs over all nodes."""
        return sum(n.gpus for n in self.nodes)


@dataclass(frozen=True)
class GroupPlan:
    """One group of actors. Bundles are listed rank by rank; an engine's TP bundles are adjacent."""

    name: str                          # "policy", "reference" or "vllm"
    ranks: int                         # training ranks, or vLLM engines
    num_nodes: int | None              # nodes the flags ask for (None for vllm: engines go where they fit)
    per_node: int                      # ranks per node (policy/reference), GPUs per engine (vllm)
    bundles: tuple[dict, ...]          # one per GPU (per rank on CPU)
    nodes: tuple[int | None, ...]      # planned node index per bundle; None when the cluster is unknown

    @property
    def bundles_per_rank(self) -> int:
        """Bundles of one rank: 1, or TP for a vLLM engine on GPUs."""
        return len(self.bundles) // self.ranks

    def rank_bundles(self, rank: int) -> range:
        """Indices into `bundles`/`nodes` of one rank (one engine's TP GPUs for vllm)."""
        step = self.bundles_per_rank
        return range(rank * step, (rank + 1) * step)

    @property
    def gpus(self) -> int:
        """Physical GPUs this group touches (0 on CPU)."""
        return len(self.bundles) if self.bundles and "GPU" in self.bundles[0] else 0

    def shape(self) -> str:
        """The group's size in flag terms, e.g. "4 rank(s) = 1 node(s) x 4" or "2 engine(s) x TP 1"."""
        if self.name == "vllm":
            return f"{self.ranks} engine(s) x TP {self.per_node}"
        return f"{self.ranks} rank(s) = {self.num_nodes} node(s) x {self.per_node}"


@dataclass(frozen=True)
class PlacementPlan:
    """Where each group's ranks go and what they reserve (built by `plan_placement`).

    colocated: --colocate_all_models (CPU only; it changes the weight sync, not the placement).
    cluster: the nodes planned against; None when unknown (no node assigned).
    groups: policy, reference (absent without KL) and vllm, in that order.
    notes: lines `describe()` adds at the end.
    """

    use_gpu: bool
    colocated: bool
    cluster: ClusterResources | None
    groups: tuple[GroupPlan, ...]
    notes: tuple[str, ...] = ()

    def rank_placement(self, name: str, rank: int) -> RankPlacement:
        """What rank `rank` of group `name` (engine `rank` for "vllm") is launched with: its
        bundles and the Ray NodeID of the node they are planned on (None where the cluster or the
        node's id is unknown). `ray_utils.actor_options` turns it into the actor's Ray options.
        Raises KeyError for a group the plan does not have."""
        group = self.group(name)
        if group is None:
            raise KeyError(f"the placement plan has no {name} group")
        indices = group.rank_bundles(rank)
        node = group.nodes[indices[0]]
        known = self.cluster is not None and node is not None and self.cluster.nodes[node].node_id
        return RankPlacement(tuple(dict(group.bundles[i]) for i in indices),
                             self.cluster.nodes[node].node_id if known else None)

    def rank_placements(self, name: str) -> list[RankPlacement]:
        """`rank_placement` of every rank of group `name`, in rank order ([] without the group)."""
        group = self.group(name)
        return [self.rank_placement(name, r) for r in range(group.ranks)] if group else []

    def group(self, name: str) -> GroupPlan | None:
        """The group called `name` ("policy", "reference", "vllm"), or None when not planned."""
        return next((g for g in self.groups if g.name == name), None)

    @property
    def total_gpus(self) -> int:
        """GPUs the plan reserves (0 on CPU)."""
        return sum(g.gpus for g in self.groups) if self.use_gpu else 0

    @property
    def per_node_gpus(self) -> tuple[int, ...]:
        """GPUs in use on each cluster node (same order as `cluster.nodes`); () when unknown."""
        if self.cluster is None:
            return ()
        used = [0] * len(self.cluster.nodes)
        if self.use_gpu:
            for g in self.groups:
                for node in g.nodes:
                    used[node] += 1
        return tuple(used)

    def _node_counts(self, group: GroupPlan) -> list[int]:
        counts = [0] * len(self.cluster.nodes)
        for node in group.nodes:
            counts[node] += 1
        return counts

    def describe(self) -> str:
        """The plan as printed at start and by --dry_run: per group its size and what each rank
        (engine) is launched with, GPUs in total and, with a known cluster, per node."""
        unit = "GPU" if self.use_gpu else "rank"
        where = ("cluster unknown: only the flags were checked, Ray picks the nodes at start"
                 if self.cluster is None else
                 f"cluster: {len(self.cluster.nodes)} node(s), {self.cluster.total_gpus} GPU(s)")
        lines = [f"[knowrl] placement ({'GPU' if self.use_gpu else 'CPU'}; {where})"]
        for g in self.groups:
            lines.append(f"  {g.name:<10} {g.shape():<34} {launch_text(self.rank_placement(g.name, 0))}")
        if not any(g.name == "reference" for g in self.groups):
            lines.append("  reference  none (KL off, or LoRA: the policy with its adapter off)")
        if self.use_gpu:
            lines.append(f"  total {self.total_gpus} GPU(s)")
        if self.cluster is not None:
            head = "node  " + ("GPUs  used  " if self.use_gpu else "CPUs  ") + "".join(
                f"{g.name:>10}" for g in self.groups)
            lines.append(f"  per node ({unit}s per group):")
            lines.append("  " + head)
            columns = [self._node_counts(g) for g in self.groups]
            used = self.per_node_gpus
            for i, node in enumerate(self.cluster.nodes):
                row = f"{i:<6}" + (f"{node.gpus:<6}{used[i]:<6}" if self.use_gpu else f"{node.cpus:<6}")
                lines.append("  " + row + "".join(f"{c[i]:>10}" for c in columns))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _fmt_bundle(bundle: dict) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in bundle.items()) + "}"


def launch_text(placement: RankPlacement) -> str:
    """How `ray_utils.actor_options` launches a rank with `placement`, in words: "each {GPU: 1,
    CPU: 1}" for one bundle, "each a placement group of 2 x {GPU: 1, CPU: 1} on one node" for a
    tensor-parallel engine."""
    if len(placement.bundles) == 1:
        return f"each {_fmt_bundle(placement.bundles[0])}"
    return f"each a placement group of {len(placement.bundles)} x {_fmt_bundle(placement.bundles[0])} on one node"


@dataclass(frozen=True)
class _Layout:
    actor_nodes: int
    actor_per_node: int
    ref_nodes: int
    ref_per_node: int
    engines: int
    tp: int
    needs_ref: bool
    colocate: bool

    def request(self, group: str) -> tuple[int, int]:
        return {"policy": (self.actor_nodes, self.actor_per_node), "reference": (self.ref_nodes, self.ref_per_node),
                "vllm": (self.engines, self.tp)}[group]

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g for g in GROUPS if g != "reference" or self.needs_ref)

    def gpus(self, group: str) -> int:
        a, b = self.request(group)
        return a * b


def _read_layout(cfg) -> _Layout:
    needs_ref = getattr(cfg, "needs_reference", None)
    if needs_ref is None:
        needs_ref = getattr(cfg, "init_kl_coef", 1.0) > 0
    return _Layout(int(cfg.actor_num_nodes), int(cfg.actor_num_gpus_per_node), int(cfg.ref_num_nodes),
                   int(cfg.ref_num_gpus_per_node), int(cfg.vllm_num_engines), int(cfg.vllm_tensor_parallel_size),
                   bool(needs_ref), bool(getattr(cfg, "colocate_all_models", False)))


def _check_counts(lay: _Layout) -> None:
    for group in lay.group_names:
        for flag, value in zip(FLAGS[group], lay.request(group)):
            if value < 1:
                raise LayoutError(f"{flag} is {value}: every node, rank, engine and TP count must be at least 1; "
                                  f"set {flag} 1 or more")


def _split(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _sizes(lay: _Layout) -> str:
    parts = [f"policy {lay.gpus('policy')}"]
    if lay.needs_ref:
        parts.append(f"reference {lay.gpus('reference')}")
    parts.append(f"vLLM {lay.engines} x TP {lay.tp} = {lay.gpus('vllm')}")
    return ", ".join(parts)


def _cpu_note(cluster: ClusterResources) -> str:
    short = [f"node {i} has {n.gpus} GPUs but {n.cpus} CPUs" for i, n in enumerate(cluster.nodes) if n.cpus < n.gpus]
    return f" (each GPU rank also reserves 1 CPU: {'; '.join(short)})" if short else ""


# --- packing -------------------------------------------------------------------------------------

def _choices(free: tuple[int, ...], count: int, need: int):
    """Ways to pick `count` distinct nodes with >= `need` free, as ((free value, how many), ...),
    fullest-that-fits first."""
    values = sorted({f for f in free if f >= need})
    avail = {v: free.count(v) for v in values}

    def gen(i: int, left: int):
        if left == 0:
            yield ()
            return
        if i == len(values):
            return
        v = values[i]
        for c in range(min(left, avail[v]), -1, -1):
            for rest in gen(i + 1, left - c):
                yield (((v, c),) if c else ()) + rest

    yield from gen(0, count)


def _take(free: list[int], choice) -> list[int]:
    """Concrete nodes for a choice: the lowest-index nodes with each chosen free value."""
    picked = []
    for value, c in choice:
        picked.extend([i for i, f in enumerate(free) if f == value and i not in picked][:c])
    return sorted(picked)


def _pack(places: tuple[int, ...], units: list[tuple[int, int]]) -> list[list[int]] | None:
    """Place each unit (count, need) = `need` GPUs on each of `count` distinct nodes.

    Returns the chosen node indices per unit (in `units` order), or None when no placement exists.
    Feasibility depends only on the multiset of free counts, so failures are memoised on it.
    """
    order = sorted(range(len(units)), key=lambda i: -units[i][1])

    @lru_cache(maxsize=None)
    def feasible(pos: int, free_sorted: tuple[int, ...]) -> bool:
        if pos == len(order):
            return True
        count, need = units[order[pos]]
        for choice in _choices(free_sorted, count, need):
            rest = list(free_sorted)
            for value, c in choice:
                for _ in range(c):
                    rest[rest.index(value)] = value - need
            if feasible(pos + 1, tuple(sorted(rest))):
                return True
        return False

    free = list(places)
    chosen: dict[int, list[int]] = {}
    for pos, unit_index in enumerate(order):
        count, need = units[unit_index]
        for choice in _choices(tuple(free), count, need):
            nodes = _take(free, choice)
            trial = list(free)
            for n in nodes:
                trial[n] -= need
            if feasible(pos + 1, tuple(sorted(trial))):
                chosen[unit_index] = nodes
                free = trial
                break
        else:
            return None
    return [chosen[i] for i in range(len(units))]


def _greedy_failure(places: tuple[int, ...], units: list[tuple[int, int, str]]) -> str:
    """Where the fullest-fit greedy order gets stuck: used to explain a refusal."""
    free = list(places)
    placed: list[str] = []
    for count, need, label in sorted(units, key=lambda u: -u[1]):
        choice = next(_choices(tuple(free), count, need), None)
        if choice is None:
            after = f"after placing {', '.join(placed)}, " if placed else ""
            where = "on one node" if count == 1 else f"on each of {count} distinct nodes"
            return (f"{after}{label} needs {need} GPU(s) {where} but the free GPUs per "
                    f"node are {', '.join(map(str, free))}")
        for n in _take(free, choice):
            free[n] -= need
        placed.append(label)
    return "no placement found"


# --- the plan ------------------------------------------------------------------------------------

def plan_placement(cfg, cluster: ClusterResources | None, use_gpu: bool) -> PlacementPlan:
    """Check the layout flags against the cluster and say where every actor goes (see module doc)."""
    lay = _read_layout(cfg)
    _check_counts(lay)
    if not use_gpu:
        return _plan_cpu(lay, cluster)
    if lay.colocate:
        raise LayoutError("--colocate_all_models on GPUs is not implemented (policy, reference and engines would "
                          "have to share GPUs between phases): drop the flag and give each rank and engine a GPU of "
                          "its own")
    return _plan_gpu(lay, cluster)


def _plan_cpu(lay: _Layout, cluster: ClusterResources | None) -> PlacementPlan:
    if lay.tp > 1:
        raise LayoutError(f"--vllm_tensor_parallel_size {lay.tp} needs GPUs: without one every vLLM engine runs on "
                          f"CPU with TP 1; set --vllm_tensor_parallel_size 1")
    notes = []
    if cluster is not None:
        for group in ("policy", "reference"):
            if group not in lay.group_names:
                continue
            nodes, _ = lay.request(group)
            if nodes > len(cluster.nodes):
                raise LayoutError(f"{group} asks for {_split(nodes, 'node')} ({FLAGS[group][0]} {nodes}) but the "
                                  f"cluster has {_split(len(cluster.nodes), 'alive node')}; set {FLAGS[group][0]} "
                                  f"{len(cluster.nodes)} or less, or join more nodes")
    if lay.colocate:
        notes.append("--colocate_all_models on CPU: every rank and engine already shares the cores; only the weight "
                     "sync changes (buckets through shared memory instead of a gloo group)")
    groups = []
    for name in lay.group_names:
        a, b = lay.request(name)
        ranks = a * b
        if cluster is None:
            nodes = (None,) * ranks
        elif name == "vllm":
            nodes = (0,) * ranks
        else:
            nodes = tuple(r // b for r in range(ranks))
        groups.append(GroupPlan(name, a if name == "vllm" else ranks, None if name == "vllm" else a, b,
                                tuple(dict(CPU_RANK_BUNDLE) for _ in range(ranks)), nodes))
    return PlacementPlan(False, lay.colocate, cluster, tuple(groups), tuple(notes))


def _check_cluster_totals(lay: _Layout, cluster: ClusterResources, needed: int) -> tuple[int, ...]:
    places = tuple(n.gpu_places for n in cluster.nodes)
    note = _cpu_note(cluster)
    if needed > sum(places):
        have = sum(places)
        raise LayoutError(f"the layout needs {needed} GPUs ({_sizes(lay)}) but the cluster has {have}"
                          f"{' usable' if note else ''}{note} "
                          f"(short by {needed - have}); join more GPU nodes or shrink the groups")
    biggest = max(places, default=0)
    if lay.tp > biggest:
        raise LayoutError(f"--vllm_tensor_parallel_size {lay.tp} needs {lay.tp} GPUs on one node but the largest "
                          f"node has {biggest}{note}; set --vllm_tensor_parallel_size {max(biggest, 1)} or less")
    for group in lay.group_names:
        if group == "vllm":
            continue
        nodes, per_node = lay.request(group)
        fitting = sum(1 for p in places if p >= per_node)
        if fitting < nodes:
            flag_nodes, flag_per = FLAGS[group]
            raise LayoutError(f"{group} needs {per_node} GPUs on each of {_split(nodes, 'node')} but only "
                              f"{_split(fitting, 'node')} of the cluster {'has' if fitting == 1 else 'have'} "
                              f"{per_node} or more (GPUs per node: {', '.join(map(str, places))}){note}; "
                              f"lower {flag_per} and raise {flag_nodes}, or join bigger nodes")
    return places


def _plan_gpu(lay: _Layout, cluster: ClusterResources | None) -> PlacementPlan:
    names = lay.group_names
    needed = sum(lay.gpus(g) for g in names)
    bundle = GPU_RANK_BUNDLE
    if cluster is None:
        groups = []
        for name in names:
            a, b = lay.request(name)
            groups.append(GroupPlan(name, a if name == "vllm" else a * b, None if name == "vllm" else a, b,
                                    tuple(dict(bundle) for _ in range(a * b)), (None,) * (a * b)))
        return PlacementPlan(True, False, None, tuple(groups))

    places = _check_cluster_totals(lay, cluster, needed)
    units: list[tuple[int, int, str]] = []
    owners: list[str] = []
    for name in names:
        a, b = lay.request(name)
        if name == "vllm":
            units.extend((1, b, f"vLLM engine {i}") for i in range(a))
            owners.extend([name] * a)
        else:
            units.append((a, b, f"{name} ({_split(a, 'node')} x {b})"))
            owners.append(name)
    result = _pack(places, [(c, n) for c, n, _ in units])
    if result is None:
        raise LayoutError(f"the groups do not fit together ({_sizes(lay)}): "
                          f"{_greedy_failure(places, units)}{_cpu_note(cluster)}; "
                          f"use fewer engines, a smaller TP or fewer ranks per node, or join more nodes")
    groups = []
    for name in names:
        a, b = lay.request(name)
        picks = [nodes for owner, nodes in zip(owners, result) if owner == name]
        if name == "vllm":
            nodes = tuple(p[0] for p in picks for _ in range(b))
        else:
            nodes = tuple(node for node in picks[0] for _ in range(b))
        groups.append(GroupPlan(name, a if name == "vllm" else a * b, None if name == "vllm" else a, b,
                                tuple(dict(bundle) for _ in range(a * b)), nodes))
    return PlacementPlan(True, False, cluster, tuple(groups))
