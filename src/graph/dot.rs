//! Graphviz DOT output of the resource graph.

use super::ResourceGraph;

pub fn render(g: &ResourceGraph, app: &str) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", escape(app));
    for r in g.resources() {
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n{}\"];\n",
            r.address,
            r.address,
            r.spec.kind_name()
        ));
    }
    for (from, to) in g.edges() {
        out.push_str(&format!("  \"{from}\" -> \"{to}\";\n"));
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
