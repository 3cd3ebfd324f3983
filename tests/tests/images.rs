//! The agent's image as `deploy/images/build.sh` writes it (an OCI archive): runs as 65532:65532,
//! enters the agent binary, holds that one static binary in one layer and nothing else, and stays
//! under 30 MB. The same rules are run against the busybox step image, which must break them, so
//! the checks are shown to fail on an image that is not the agent's.
//!
//! Needs the archives built beforehand: `bash deploy/images/build.sh`.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

/// Where the entrypoint puts the agent, as `deploy/images/build.sh` packs it.
const AGENT_PATH: &str = "/usr/local/bin/jobflow-agent";
/// The bound on the compressed image (the archive holds gzip layers and JSON).
const MAX_COMPRESSED_BYTES: u64 = 30_000_000;
/// An ELF program header's type for the dynamic loader's path: a static binary has none.
const PT_INTERP: u32 = 3;

/// `$ZEN_FLOW_IMAGES_DIR`, else `images/` in the cache the build script uses
/// (`${ZEN_FLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zen-flow}`).
fn images_dir() -> PathBuf {
    let from_env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = from_env("ZEN_FLOW_IMAGES_DIR") {
        return dir.into();
    }
    let cache = from_env("ZEN_FLOW_CACHE").map_or_else(
        || {
            from_env("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| from_env("HOME").map(|home| Path::new(&home).join(".cache")))
                .unwrap_or_default()
                .join("zen-flow")
        },
        PathBuf::from,
    );
    cache.join("images")
}

/// One image read from an OCI archive: its name, config, and the files of each layer.
struct Image {
    /// The index's `org.opencontainers.image.ref.name`, the name `ctr images import` registers.
    name: String,
    /// The image config (`User`, `Entrypoint` and the rest live under `config`).
    config: Value,
    /// Per layer: each entry's path (without a leading `./` or `/`), kind and content.
    layers: Vec<Vec<Entry>>,
    /// The archive's size on disk.
    archive_bytes: u64,
}

/// One entry of a layer.
struct Entry {
    /// The path inside the image, relative to its root.
    path: String,
    /// The tar entry type (directory, regular file, symlink ...).
    kind: tar::EntryType,
    /// The permission bits.
    mode: u32,
    /// A regular file's content; empty for everything else.
    content: Vec<u8>,
}

impl Image {
    /// Reads the archive at `path`; a missing file says how to build it.
    fn read(path: &Path) -> anyhow::Result<Self> {
        let archive_bytes = std::fs::metadata(path)
            .with_context(|| {
                format!(
                    "{} is missing: build the images first with `bash deploy/images/build.sh`",
                    path.display()
                )
            })?
            .len();
        let mut files = HashMap::new();
        let mut archive = tar::Archive::new(std::fs::File::open(path)?);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let name = entry.path()?.to_string_lossy().into_owned();
            let mut content = Vec::new();
            entry.read_to_end(&mut content)?;
            files.insert(name, content);
        }
        let json = |name: &str| -> anyhow::Result<Value> {
            let bytes = files
                .get(name)
                .with_context(|| format!("{} has no {name}", path.display()))?;
            serde_json::from_slice(bytes).with_context(|| format!("{name} is not JSON"))
        };
        let blob = |digest: &Value| -> anyhow::Result<Value> {
            let digest = digest.as_str().context("a digest is not a string")?;
            json(&format!("blobs/{}", digest.replacen(':', "/", 1)))
        };
        let index = json("index.json")?;
        let manifests = index["manifests"]
            .as_array()
            .context("index has no manifests")?;
        ensure!(
            manifests.len() == 1,
            "index lists {} manifests, not one",
            manifests.len()
        );
        let name = manifests[0]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .context("the manifest has no org.opencontainers.image.ref.name")?
            .to_owned();
        let manifest = blob(&manifests[0]["digest"])?;
        let config = blob(&manifest["config"]["digest"])?;
        let mut layers = Vec::new();
        for layer in manifest["layers"]
            .as_array()
            .context("manifest has no layers")?
        {
            let digest = layer["digest"].as_str().context("a layer has no digest")?;
            let gzip = files
                .get(&format!("blobs/{}", digest.replacen(':', "/", 1)))
                .with_context(|| format!("layer {digest} is not in the archive"))?;
            layers.push(read_layer(gzip).with_context(|| format!("reading layer {digest}"))?);
        }
        Ok(Self {
            name,
            config,
            layers,
            archive_bytes,
        })
    }

    /// Every rule the agent's image must meet, all reported at once.
    fn check_agent_rules(&self) -> anyhow::Result<()> {
        let mut broken = Vec::new();
        let expected_name = format!(
            "docker.io/library/jobflow-agent:{}",
            env!("CARGO_PKG_VERSION")
        );
        if self.name != expected_name {
            broken.push(format!("named {:?}, not {expected_name:?}", self.name));
        }
        let user = &self.config["config"]["User"];
        if user != "65532:65532" {
            broken.push(format!("user is {user}, not \"65532:65532\""));
        }
        let entrypoint = &self.config["config"]["Entrypoint"];
        if *entrypoint != serde_json::json!([AGENT_PATH]) {
            broken.push(format!("entrypoint is {entrypoint}, not [{AGENT_PATH:?}]"));
        }
        if self.archive_bytes >= MAX_COMPRESSED_BYTES {
            broken.push(format!(
                "the archive is {} bytes, not under {MAX_COMPRESSED_BYTES}",
                self.archive_bytes
            ));
        }
        match self.layers.as_slice() {
            [layer] => {
                if let Err(error) = check_agent_layer(layer) {
                    broken.push(format!("{error:#}"));
                }
            }
            layers => broken.push(format!("{} layers, not one", layers.len())),
        }
        if broken.is_empty() {
            Ok(())
        } else {
            bail!(
                "the agent image breaks its rules:\n  {}",
                broken.join("\n  ")
            )
        }
    }
}

/// Ungzips and walks one layer.
fn read_layer(gzip: &[u8]) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut layer = tar::Archive::new(flate2::read::GzDecoder::new(gzip));
    for entry in layer.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let path = raw.trim_start_matches("./").trim_matches('/').to_owned();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode()?;
        let mut content = Vec::new();
        if kind.is_file() {
            entry.read_to_end(&mut content)?;
        }
        entries.push(Entry {
            path,
            kind,
            mode,
            content,
        });
    }
    Ok(entries)
}

/// The agent's one layer: directories, and one executable regular file at [`AGENT_PATH`] that is
/// a static ELF.
fn check_agent_layer(layer: &[Entry]) -> anyhow::Result<()> {
    let others: Vec<&str> = layer
        .iter()
        .filter(|entry| !entry.kind.is_dir() && entry.path != AGENT_PATH[1..])
        .map(|entry| entry.path.as_str())
        .collect();
    ensure!(
        others.is_empty(),
        "the layer holds more than the binary: {} other entries, first {:?}",
        others.len(),
        &others[..others.len().min(5)]
    );
    let binary = layer
        .iter()
        .find(|entry| entry.path == AGENT_PATH[1..])
        .with_context(|| format!("the layer has no {AGENT_PATH}"))?;
    ensure!(binary.kind.is_file(), "{AGENT_PATH} is not a regular file");
    ensure!(binary.mode & 0o111 != 0, "{AGENT_PATH} is not executable");
    ensure!(
        !has_interpreter(&binary.content)?,
        "{AGENT_PATH} is dynamically linked (it has PT_INTERP)"
    );
    Ok(())
}

/// Whether a 64-bit little-endian ELF names a dynamic loader (a `PT_INTERP` program header).
/// Static and static-pie binaries have none.
fn has_interpreter(elf: &[u8]) -> anyhow::Result<bool> {
    let field = |offset: usize, width: usize| -> anyhow::Result<u64> {
        let bytes = elf
            .get(offset..offset + width)
            .context("truncated ELF file")?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0, |value, byte| (value << 8) | u64::from(*byte)))
    };
    ensure!(elf.starts_with(b"\x7fELF"), "not an ELF file");
    ensure!(
        elf.get(4..6) == Some(&[2, 1]),
        "not a 64-bit little-endian ELF"
    );
    let program_headers = usize::try_from(field(0x20, 8)?)?;
    let entry_size = usize::try_from(field(0x36, 2)?)?;
    let count = usize::try_from(field(0x38, 2)?)?;
    for index in 0..count {
        if field(program_headers + index * entry_size, 4)? == u64::from(PT_INTERP) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[test]
fn agent_image_runs_one_static_binary_as_non_root() -> anyhow::Result<()> {
    let image = Image::read(&images_dir().join("jobflow-agent.tar"))?;
    image.check_agent_rules()
}

#[test]
fn busybox_image_breaks_the_agent_rules() -> anyhow::Result<()> {
    let image = Image::read(&images_dir().join("busybox.tar"))?;
    assert_eq!(image.name, "docker.io/library/busybox:1.35.0");
    let layer = image.layers.first().context("busybox has no layer")?;
    let sh = layer
        .iter()
        .find(|entry| entry.path == "bin/sh")
        .context("busybox has no bin/sh")?;
    assert!(
        sh.kind.is_symlink(),
        "bin/sh is not the busybox applet link"
    );
    let error = image
        .check_agent_rules()
        .err()
        .context("the busybox image passed the agent's rules: the checks cannot fail")?;
    let report = format!("{error:#}");
    for rule in ["named", "user is", "entrypoint is", "more than the binary"] {
        assert!(report.contains(rule), "no {rule:?} in:\n{report}");
    }
    Ok(())
}

#[test]
fn has_interpreter_reads_the_program_headers() -> anyhow::Result<()> {
    // This test's own binary is dynamic (the workspace is not built with crt-static).
    let own = std::fs::read(std::env::current_exe()?)?;
    assert!(has_interpreter(&own)?);
    assert!(has_interpreter(b"#!/bin/sh\n").is_err());
    Ok(())
}
