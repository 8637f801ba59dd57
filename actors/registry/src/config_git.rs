//! Configuration from a git repository (`--config-repo PATH_OR_URL --config-label
//! BRANCH_OR_TAG`): the `*.toml` files at the root of the label's commit, read with libgit2
//! (`git2`), never from a work tree.
//!
//! A local repository (a path; bare or not) is read in place: a new commit on the label is seen
//! at the next poll. A URL (`file://`, `git://`, `https://` through the system OpenSSL) is cloned
//! bare under the node's data directory and fetched at every poll and refresh. There is no ssh
//! transport in this build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{FetchOptions, Repository, build::RepoBuilder};

use crate::config_store::is_valid_name;

/// Where the clone of a remote configuration repository lives, under the data directory.
const CLONE_DIR: &str = "registry-config.git";

/// One configuration repository and the label the registry serves.
pub struct GitSource {
    /// The repository as shown in logs and errors: a URL's user and password are masked.
    location: String,
    label: String,
    repo: Repository,
    /// Whether `repo` is a clone to fetch into (a URL was given), not the repository itself.
    fetches: bool,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("GitSource").field("location", &self.location).field("label", &self.label).finish()
    }
}

/// What a read found: the files and the commit they come from.
pub struct GitRead {
    /// The `*.toml` files at the root of the commit, by name.
    pub texts: BTreeMap<String, String>,
    /// The commit id (40 hex digits).
    pub commit: String,
}

impl GitSource {
    /// Opens `location` (a repository path, or a URL cloned under `data_dir`) to serve `label`.
    pub fn open(location: &str, label: &str, data_dir: &Path) -> Result<GitSource, String> {
        if label.trim().is_empty() {
            return Err("--config-label must name a branch, a tag or a commit".to_string());
        }
        let url = location;
        let location = &masked(location);
        let local = Path::new(url);
        let (repo, fetches) = if !url.contains("://") {
            let repo = Repository::open(local)
                .map_err(|error| format!("--config-repo {location}: not a git repository: {}", error.message()))?;
            (repo, false)
        } else {
            let clone_dir: PathBuf = data_dir.join(CLONE_DIR);
            let repo = match Repository::open_bare(&clone_dir) {
                Ok(repo)
                    if repo
                        .find_remote("origin")
                        .ok()
                        .and_then(|remote| remote.url().map(str::to_string))
                        .as_deref()
                        == Some(location) =>
                {
                    repo
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&clone_dir);
                    RepoBuilder::new()
                        .bare(true)
                        .clone(url, &clone_dir)
                        .map_err(|error| format!("--config-repo {location}: cannot clone: {}", error.message()))?
                }
            };
            (repo, true)
        };
        Ok(GitSource { location: location.to_string(), label: label.to_string(), repo, fetches })
    }

    /// The repository as given, a URL's credentials masked.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The label served.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Fetches when the source is a clone, then reads the label's commit.
    pub fn read(&mut self) -> Result<GitRead, String> {
        if self.fetches {
            self.fetch()?;
        }
        let commit = self.resolve()?;
        let tree = commit.tree().map_err(|error| self.error("cannot read the commit's tree", &error))?;
        let mut texts = BTreeMap::new();
        for entry in tree.iter() {
            let Some(name) = entry.name() else { continue };
            let Some(stem) = name.strip_suffix(".toml") else { continue };
            if name.starts_with('.') || entry.kind() != Some(git2::ObjectType::Blob) {
                continue;
            }
            if !is_valid_name(stem) {
                return Err(format!(
                    "{}/{name}: a configuration file is named <service>.toml or <service>-<profile>.toml \
                     (lowercase letters, digits and hyphens)",
                    self.display(&commit.id().to_string())
                ));
            }
            let blob = self.repo.find_blob(entry.id()).map_err(|error| self.error(name, &error))?;
            let text = std::str::from_utf8(blob.content())
                .map_err(|_| format!("{}/{name}: not UTF-8", self.display(&commit.id().to_string())))?;
            texts.insert(name.to_string(), text.to_string());
        }
        Ok(GitRead { texts, commit: commit.id().to_string() })
    }

    /// How errors and file names show a commit of this repository: `<location>@<short id>`.
    pub fn display(&self, commit: &str) -> String {
        format!("{}@{}", self.location, &commit[..commit.len().min(12)])
    }

    fn fetch(&self) -> Result<(), String> {
        let mut remote = self.repo.find_remote("origin").map_err(|error| self.error("no origin", &error))?;
        let refspecs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"];
        remote
            .fetch(&refspecs, Some(&mut FetchOptions::new()), None)
            .map_err(|error| self.error("cannot fetch", &error))
    }

    /// The label's commit: a branch (of the clone's origin, or of the repository itself), a
    /// tag, or anything `git rev-parse` takes.
    fn resolve(&self) -> Result<git2::Commit<'_>, String> {
        let label = &self.label;
        let candidates = if self.fetches {
            [format!("refs/remotes/origin/{label}"), format!("refs/tags/{label}")]
        } else {
            [format!("refs/heads/{label}"), format!("refs/tags/{label}")]
        };
        let object = candidates
            .iter()
            .find_map(|name| self.repo.revparse_single(name).ok())
            .or_else(|| self.repo.revparse_single(label).ok())
            .ok_or_else(|| format!("--config-repo {}: no branch, tag or commit {label}", self.location))?;
        object.peel_to_commit().map_err(|error| self.error(&format!("{label} is not a commit"), &error))
    }

    fn error(&self, what: &str, error: &git2::Error) -> String {
        format!("--config-repo {} ({}): {what}: {}", self.location, self.label, error.message())
    }
}

/// `location` with the user and password of a URL masked (`https://***@host/repo`): a token in
/// the URL never reaches a log line or an error.
fn masked(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else { return location.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => location.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_masked() {
        assert_eq!(masked("https://deploy:s3cret@git.example/config.git"), "https://***@git.example/config.git");
        assert_eq!(masked("https://token@git.example/a@b"), "https://***@git.example/a@b");
        assert_eq!(masked("git://127.0.0.1:9418/config"), "git://127.0.0.1:9418/config");
        assert_eq!(masked("/srv/config-repo"), "/srv/config-repo");
    }
}
