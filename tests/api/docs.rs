//! The README and docs/ stand alone: every relative link in them leads to a file or folder
//! of this repository, so a fresh clone holds everything they point to.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The targets of the Markdown links `[text](target)` in `text`, fragments left out.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        let target = target.split('#').next().unwrap_or(target);
        if !target.is_empty() {
            targets.push(target.to_owned());
        }
        rest = &rest[end..];
    }
    targets
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut pages = vec![Path::new(ROOT).join("README.md")];
    let docs = std::fs::read_dir(Path::new(ROOT).join("docs")).expect("docs/ exists");
    pages.extend(docs.map(|entry| entry.unwrap().path()));
    let mut checked = 0;
    for page in pages
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(page).unwrap();
        assert!(
            !text.contains("../shared"),
            "{} points outside the repository",
            page.display()
        );
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = page.parent().unwrap().join(&target);
            assert!(
                resolved.exists(),
                "{} links to {target}, which is not in the repository",
                page.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 5,
        "the README links to docs/ ({checked} links checked)"
    );
}
