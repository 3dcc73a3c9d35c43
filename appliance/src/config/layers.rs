//! The running configuration as the layers it is made of: the board's own
//! file (or the embedded defaults), then the fleet's group document, then its
//! device document, each overlaying the one before key by key.
//!
//! Keeping the layers (not just the merged result) is what lets SIGHUP
//! re-read the file without forgetting what the fleet set, and the fleet
//! replace its document without forgetting the file.

use super::{Config, ConfigError, EMBEDDED_DEFAULTS, Source};
use crate::{
    change::{Overlay, Scope},
    tomlfile,
};

/// The layers of the running configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Layers {
    /// Where the base came from.
    pub source: Source,
    base_text: String,
    group: Option<Overlay>,
    device: Option<Overlay>,
}

impl Layers {
    /// Layers with only `text`, read from `source`.
    pub fn new(source: Source, text: String) -> Layers {
        Layers {
            source,
            base_text: text,
            group: None,
            device: None,
        }
    }

    /// Layers for `source`, reading the file again (the embedded defaults
    /// need no reading).
    pub fn read(source: &Source) -> Result<Layers, ConfigError> {
        let text = match source {
            Source::Embedded => EMBEDDED_DEFAULTS.to_owned(),
            Source::File(path) => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?
            }
        };
        Ok(Layers::new(source.clone(), text))
    }

    /// The same fleet layers over a new base.
    pub fn with_base(&self, text: String) -> Layers {
        Layers {
            base_text: text,
            ..self.clone()
        }
    }

    /// The same layers with `scope`'s overlay replaced.
    pub fn with_overlay(&self, scope: Scope, overlay: Option<Overlay>) -> Layers {
        let mut next = self.clone();
        match scope {
            Scope::Group => next.group = overlay,
            Scope::Device => next.device = overlay,
        }
        next
    }

    /// The overlay of `scope`, if any.
    pub fn overlay(&self, scope: Scope) -> Option<&Overlay> {
        match scope {
            Scope::Group => self.group.as_ref(),
            Scope::Device => self.device.as_ref(),
        }
    }

    /// `/etc/nodus/nodus.toml + group v3 + device v7`.
    pub fn describe(&self) -> String {
        let mut s = self.source.to_string();
        for o in [&self.group, &self.device].into_iter().flatten() {
            s.push_str(" + ");
            s.push_str(&o.label);
        }
        s
    }

    /// The merged, typed and validated configuration. Without overlays the
    /// base is parsed as text, so errors keep their line numbers.
    pub fn effective(&self) -> Result<Config, ConfigError> {
        if self.group.is_none() && self.device.is_none() {
            return Config::parse(&self.base_text, &self.source);
        }
        let name = self.describe();
        let mut table = tomlfile::parse_table(&self.base_text, &self.source.to_string())?;
        for o in [&self.group, &self.device].into_iter().flatten() {
            merge(&mut table, &o.table);
        }
        let config: Config = tomlfile::from_table(table, &name)?;
        config.checked(&name)
    }
}

/// Overlays `top` on `base`: tables merge key by key, anything else
/// (values, arrays) replaces what was there.
pub fn merge(base: &mut toml::Table, top: &toml::Table) {
    for (key, value) in top {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    fn overlay(label: &str, text: &str) -> Option<Overlay> {
        Some(Overlay {
            label: label.into(),
            table: table(text),
        })
    }

    #[test]
    fn device_keys_win_over_group_keys_which_win_over_the_file() {
        let base = "[fileserver]\nmax_connections = 10\nbacklog = 7\n[proccache]\ncapacity = 100\n";
        let layers = Layers::new(Source::Embedded, base.into())
            .with_overlay(
                Scope::Group,
                overlay(
                    "group v1",
                    "[fileserver]\nmax_connections = 20\nworkers = 2\n",
                ),
            )
            .with_overlay(
                Scope::Device,
                overlay("device v4", "[fileserver]\nworkers = 3\n"),
            );
        let c = layers.effective().unwrap();
        assert_eq!(c.fileserver.max_connections, 20);
        assert_eq!(c.fileserver.workers, 3);
        assert_eq!(c.fileserver.backlog, 7);
        assert_eq!(c.proccache.capacity, 100);
        assert_eq!(
            layers.describe(),
            "<embedded defaults> + group v1 + device v4"
        );
    }

    #[test]
    fn an_overlay_error_names_the_layers_and_the_key() {
        let layers = Layers::new(Source::Embedded, String::new()).with_overlay(
            Scope::Device,
            overlay("device v2", "[fileserver]\nmax_connectionz = 1\n"),
        );
        let e = layers.effective().unwrap_err().to_string();
        assert!(e.contains("device v2"), "{e}");
        assert!(e.contains("max_connectionz"), "{e}");
        let layers = Layers::new(Source::Embedded, String::new()).with_overlay(
            Scope::Device,
            overlay("device v3", "[daemon]\nstop_timeout_ms = 0\n"),
        );
        let e = layers.effective().unwrap_err().to_string();
        assert!(e.contains("daemon.stop_timeout_ms"), "{e}");
    }

    #[test]
    fn removing_an_overlay_restores_the_base() {
        let base = Layers::new(Source::Embedded, "[fileserver]\nbacklog = 9\n".into());
        let with = base.with_overlay(
            Scope::Group,
            overlay("group v1", "[fileserver]\nbacklog = 1\n"),
        );
        assert_eq!(with.effective().unwrap().fileserver.backlog, 1);
        let without = with.with_overlay(Scope::Group, None);
        assert_eq!(without.effective().unwrap().fileserver.backlog, 9);
        assert_eq!(without, base);
    }

    #[test]
    fn a_config_built_in_code_survives_as_a_base_layer() {
        // What the daemon falls back to when it is handed a Config that no
        // file says (embedders, tests).
        let mut c = Config::default();
        c.fileserver.backlog = 3;
        c.fleet.ca_file = Some("/etc/ca.pem".into());
        let text = toml::to_string(&c).unwrap();
        let layers = Layers::new(Source::Embedded, text);
        assert_eq!(layers.effective().unwrap(), c);
    }

    #[test]
    fn values_and_arrays_replace_tables_merge() {
        let mut b = table("a = [1, 2]\n[t]\nx = 1\ny = 2\n");
        merge(&mut b, &table("a = [3]\n[t]\ny = 5\n"));
        assert_eq!(b, table("a = [3]\n[t]\nx = 1\ny = 5\n"));
    }
}
