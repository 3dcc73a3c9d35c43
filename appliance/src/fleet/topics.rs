//! The MQTT topic tree (`docs/fleet.md`), in one place.

/// Every nodus topic starts here; `v1` changes only if the tree does.
pub const ROOT: &str = "nodus/v1";

/// One board's topics.
#[derive(Clone, Debug)]
pub struct Topics {
    device: String,
    group: Option<String>,
}

impl Topics {
    /// Topics of `device`, a member of `group` when given.
    pub fn new(device: &str, group: Option<&str>) -> Topics {
        Topics {
            device: device.to_owned(),
            group: group.map(str::to_owned),
        }
    }

    /// Retained birth and death (Last Will) messages.
    pub fn state(&self) -> String {
        format!("{ROOT}/{}/state", self.device)
    }

    /// Telemetry reports (QoS 1).
    pub fn telemetry(&self) -> String {
        format!("{ROOT}/{}/telemetry", self.device)
    }

    /// A retained stat-name schema.
    pub fn schema(&self, component: &str, id: u32) -> String {
        format!("{ROOT}/{}/schema/{component}/{id:08x}", self.device)
    }

    /// The board's own desired config (retained, signed).
    pub fn desired(&self) -> String {
        format!("{ROOT}/{}/config/desired", self.device)
    }

    /// The group's desired config, if the board is in a group.
    pub fn group_desired(&self) -> Option<String> {
        self.group
            .as_ref()
            .map(|g| format!("{ROOT}/group/{g}/config/desired"))
    }

    /// What the board applied and refused (retained).
    pub fn reported(&self) -> String {
        format!("{ROOT}/{}/config/reported", self.device)
    }
}

/// The device id in a `nodus/v1/<device>/...` topic.
pub fn device_of(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    let device = rest.split('/').next()?;
    (device != "group").then_some(device)
}

/// A device or group name usable as one MQTT topic level.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err("must be 1 to 128 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "'{c}' is not allowed (letters, digits, '-', '_', '.')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(check_topic_name("0123abcd-board_7.lab").is_ok());
        for bad in ["", "a/b", "a+b", "#", "a b", &"x".repeat(129)] {
            assert!(check_topic_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
