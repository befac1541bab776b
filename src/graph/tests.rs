#[test] fn placeholder_graph() {}
