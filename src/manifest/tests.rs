use std::path::Path;

use super::*;

const MINIMAL: &str = r#"[app]
name = "blog"

[provider]
kind = "aws"
region = "us-east-1"
image = "debian-12"
ssh_key = "~/.ssh/id_ed25519"
ssh_from = ["203.0.113.0/24"]

[web]
instance_type = "t3.small"
count = 2

[load_balancer]
instance_type = "t3.small"
"#;

fn errors(text: &str) -> String {
    match parse(Path::new("appgrid.toml"), text) {
        Ok(m) => panic!("expected errors, got {m:?}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn explore() {
    let cases: Vec<String> = vec![
        MINIMAL.replace("count = 2", "count = 2x"),
        MINIMAL.replace("count = 2", "count = "),
        MINIMAL.replace("count = 2", "count = 2\ncount = 3"),
        MINIMAL.replace("203.0.113.0/24\"]", "203.0.113.0/24\", "),
        MINIMAL.replace("[app]", "[ap]"),
        MINIMAL.replace("count = 2", "cont = 2"),
        "[web\ncount = 2".to_string(),
        MINIMAL.replace("[web]", "[web]]"),
        MINIMAL.replace("name = \"blog\"", "name = 'blog'\n[app]"),
        "\u{e9}\u{e9}\u{e9} = \"\u{e9}".to_string(),
    ];
    for c in cases {
        println!("=====\n{}", errors(&c));
    }
    panic!();
}
