//! The stage graph: stages are nodes, "must finish before" is an edge.

use std::collections::BTreeSet;

use petgraph::Direction;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

/// Why one stage waits for another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edge {
    /// The later stage reads a dataset the earlier one writes.
    Data(String),
    /// The later stage lists the earlier one in `needs`.
    Needs,
}

/// A directed acyclic graph over stage indexes.
#[derive(Debug, Clone, Default)]
pub struct Dag {
    graph: DiGraph<usize, Edge>,
    order: Vec<usize>,
    levels: Vec<usize>,
}

impl Dag {
    /// Builds the graph of `n` stages with `edges` (`from` must finish before `to`).
    ///
    /// # Errors
    /// Returns every cycle found, each as the stage indexes along it, first
    /// stage repeated at the end (`a -> b -> a` is `[a, b, a]`).
    pub fn build(n: usize, edges: &[(usize, usize, Edge)]) -> Result<Dag, Vec<Vec<usize>>> {
        let mut graph = DiGraph::with_capacity(n, edges.len());
        let nodes: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        for (from, to, kind) in edges {
            if let (Some(a), Some(b)) = (nodes.get(*from), nodes.get(*to))
                && graph.find_edge(*a, *b).is_none()
            {
                graph.add_edge(*a, *b, kind.clone());
            }
        }
        let order = match toposort(&graph, None) {
            Ok(order) => order,
            Err(_) => return Err(find_cycles(&graph)),
        };
        let mut levels = vec![0usize; n];
        for node in &order {
            let level = graph
                .neighbors_directed(*node, Direction::Incoming)
                .map(|p| levels.get(p.index()).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0);
            if let Some(slot) = levels.get_mut(node.index()) {
                *slot = level;
            }
        }
        Ok(Dag {
            order: order.iter().map(|n| n.index()).collect(),
            graph,
            levels,
        })
    }

    /// Number of stages.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the graph has no stages.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// A topological order: every stage after all stages it depends on.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Level of each stage: 0 for roots, else 1 + the deepest dependency.
    pub fn levels(&self) -> &[usize] {
        &self.levels
    }

    /// Stages that must finish before `stage`.
    pub fn dependencies(&self, stage: usize) -> Vec<usize> {
        self.neighbors(stage, Direction::Incoming)
    }

    /// Stages that wait for `stage`.
    pub fn dependents(&self, stage: usize) -> Vec<usize> {
        self.neighbors(stage, Direction::Outgoing)
    }

    fn neighbors(&self, stage: usize, dir: Direction) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(stage), dir)
            .map(|n| n.index())
            .collect();
        out.sort_unstable();
        out
    }

    /// Every edge as `(from, to, why)`, sorted.
    pub fn edges(&self) -> Vec<(usize, usize, Edge)> {
        let mut out: Vec<_> = self
            .graph
            .edge_indices()
            .filter_map(|e| {
                let (a, b) = self.graph.edge_endpoints(e)?;
                Some((a.index(), b.index(), self.graph.edge_weight(e)?.clone()))
            })
            .collect();
        out.sort();
        out
    }
}

/// One cycle per strongly connected component that has one.
fn find_cycles(graph: &DiGraph<usize, Edge>) -> Vec<Vec<usize>> {
    let mut cycles = Vec::new();
    for scc in tarjan_scc(graph) {
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let Some(start) = members.iter().next().copied() else {
            continue;
        };
        let self_loop = graph.find_edge(start, start).is_some();
        if members.len() < 2 && !self_loop {
            continue;
        }
        if let Some(path) = cycle_from(graph, start, &members) {
            cycles.push(path.iter().map(|n| n.index()).collect());
        }
    }
    cycles.sort();
    cycles
}

/// A path `start -> ... -> start` inside `members`, by iterative DFS.
fn cycle_from(
    graph: &DiGraph<usize, Edge>,
    start: NodeIndex,
    members: &BTreeSet<NodeIndex>,
) -> Option<Vec<NodeIndex>> {
    let mut path = vec![start];
    let mut visited = BTreeSet::from([start]);
    let mut iters = vec![sorted_successors(graph, start, members)];
    while let Some(next) = iters.last_mut().and_then(Vec::pop) {
        if next == start {
            path.push(start);
            return Some(path);
        }
        if visited.insert(next) {
            path.push(next);
            iters.push(sorted_successors(graph, next, members));
        }
        while iters.last().is_some_and(Vec::is_empty) {
            iters.pop();
            path.pop();
        }
    }
    None
}

/// Successors within `members`, in reverse order so `pop` yields the smallest first.
fn sorted_successors(
    graph: &DiGraph<usize, Edge>,
    node: NodeIndex,
    members: &BTreeSet<NodeIndex>,
) -> Vec<NodeIndex> {
    let mut next: Vec<NodeIndex> = graph
        .neighbors(node)
        .filter(|n| members.contains(n))
        .collect();
    next.sort_unstable_by(|a, b| b.cmp(a));
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn needs(edges: &[(usize, usize)]) -> Vec<(usize, usize, Edge)> {
        edges.iter().map(|(a, b)| (*a, *b, Edge::Needs)).collect()
    }

    #[test]
    fn levels_follow_longest_path() {
        let dag = Dag::build(4, &needs(&[(0, 1), (1, 2), (0, 2), (3, 2)])).unwrap();
        assert_eq!(dag.levels(), &[0, 1, 2, 0]);
        assert_eq!(dag.dependencies(2), vec![0, 1, 3]);
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let cycles = Dag::build(2, &needs(&[(1, 1)])).unwrap_err();
        assert_eq!(cycles, vec![vec![1, 1]]);
    }

    #[test]
    fn cycle_path_is_printed_in_order() {
        let cycles = Dag::build(4, &needs(&[(0, 1), (1, 2), (2, 0), (2, 3)])).unwrap_err();
        assert_eq!(cycles, vec![vec![0, 1, 2, 0]]);
    }

    fn random_dag() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
        (2usize..40).prop_flat_map(|n| {
            let edge = (0..n, 0..n - 1).prop_map(|(a, b)| {
                let b = if b >= a { b + 1 } else { b };
                (a.min(b), a.max(b))
            });
            (Just(n), proptest::collection::vec(edge, 0..120))
        })
    }

    proptest! {
        #[test]
        fn order_respects_every_edge((n, edges) in random_dag(), perm_seed in any::<u64>()) {
            // Relabel nodes so edges do not always point from low to high.
            let mut perm: Vec<usize> = (0..n).collect();
            let mut s = perm_seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                perm.swap(i, (s >> 33) as usize % (i + 1));
            }
            let edges: Vec<(usize, usize)> = edges.iter().map(|(a, b)| (perm[*a], perm[*b])).collect();
            let dag = Dag::build(n, &needs(&edges)).unwrap();
            let pos: Vec<usize> = {
                let mut pos = vec![0; n];
                for (i, s) in dag.order().iter().enumerate() { pos[*s] = i; }
                pos
            };
            prop_assert_eq!(dag.order().len(), n);
            for (a, b) in &edges {
                prop_assert!(pos[*a] < pos[*b]);
                prop_assert!(dag.levels()[*a] < dag.levels()[*b]);
            }
        }

        #[test]
        fn random_cycles_are_always_reported((n, edges) in random_dag(), back in any::<(usize, usize)>()) {
            prop_assume!(!edges.is_empty());
            // Close a cycle: pick an edge a->b and add a path back b->a.
            let (a, b) = edges[back.0 % edges.len()];
            let mut all = edges.clone();
            all.push((b, a));
            let cycles = Dag::build(n, &needs(&all)).unwrap_err();
            prop_assert!(!cycles.is_empty());
            for cycle in &cycles {
                prop_assert_eq!(cycle.first(), cycle.last());
                for w in cycle.windows(2) {
                    prop_assert!(all.contains(&(w[0], w[1])), "{:?} not an edge", w);
                }
            }
        }
    }
}
