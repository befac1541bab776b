//! `appgrid doctor`: which programs the manifest needs here, and how to get
//! the missing ones.

use std::path::Path;
use std::process::ExitCode;

use appgrid::engine::Workspace;
use appgrid::requirements::requirements;

use super::Failure;

fn found(program: &str) -> Option<String> {
    if program.starts_with('/') {
        return Path::new(program).exists().then(|| program.to_string());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

pub fn run(file: &Path) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, None)?;
    let mut missing = Vec::new();
    for r in requirements(&ws.manifest.manifest) {
        match found(&r.program) {
            Some(at) => println!(
                "ok       {:<12} {at}",
                r.program.rsplit('/').next().unwrap_or(&r.program)
            ),
            None => {
                println!(
                    "missing  {:<12} {} (package {})",
                    r.program.rsplit('/').next().unwrap_or(&r.program),
                    r.why,
                    r.package
                );
                if !missing.contains(&r.package) {
                    missing.push(r.package);
                }
            }
        }
    }
    if missing.is_empty() {
        println!("Everything {} needs is installed.", file.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "\nInstall what is missing with:\n  sudo apt-get install {}",
        missing.join(" ")
    );
    Ok(ExitCode::from(1))
}
