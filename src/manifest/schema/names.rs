//! The shapes of the names a manifest is made of: DNS labels, AWS regions and
//! zones, image names, EC2 instance types, Unix user names and time zones.
//!
//! These are pure predicates; the callers word the diagnostics. The shapes
//! are deliberately strict: every one of these strings ends up in a tag, a
//! host name, a file name or a shell command line on a machine.

/// A DNS label: 1–63 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
/// On failure, returns a valid label close to `name` to suggest instead.
pub(super) fn dns_label(name: &str) -> Result<(), String> {
    let valid = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        return Ok(());
    }
    Err(suggest_dns_label(name))
}

/// Lowercase, replace every other character by `-`, squeeze runs of `-`,
/// trim `-` at both ends, cut to 63 characters.
fn suggest_dns_label(name: &str) -> String {
    let mut label = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (label.is_empty() || label.ends_with('-')) {
            continue;
        }
        label.push(c);
        if label.len() == 63 {
            break;
        }
    }
    let label = label.trim_end_matches('-');
    if label.is_empty() {
        "app".to_string()
    } else {
        label.to_string()
    }
}

/// Lowercase letters, digits and `-`; non-empty; no leading, trailing or
/// doubled `-`.
fn dashed_words(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// An AWS region code like `us-east-1` or `us-gov-west-1`: dashed lowercase
/// words, starting with a letter and ending with a number.
pub(super) fn region(s: &str) -> bool {
    s.len() <= 32
        && dashed_words(s)
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(|c: char| c.is_ascii_digit())
}

/// An availability zone name that is DNS-safe (`us-east-1a`, `us-east-1-bos-1a`).
pub(super) fn zone(s: &str) -> bool {
    s.len() <= 63 && dashed_words(s)
}

/// `ami-` followed by hex digits.
pub(super) fn ami_id(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// An image name resolved to an AMI at apply time: `[a-z0-9._-]+`.
pub(super) fn image_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// `^[a-z_][a-z0-9_-]{0,31}$`, the portable Unix user name.
pub(super) fn unix_user(s: &str) -> bool {
    let mut bytes = s.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    s.len() <= 32
        && (first.is_ascii_lowercase() || first == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// An EC2 instance type: family `[a-z][a-z0-9-]*`, `.`, size `[a-z0-9]+`.
pub(super) fn instance_type(s: &str) -> bool {
    let Some((family, size)) = s.split_once('.') else {
        return false;
    };
    s.len() <= 64
        && family.starts_with(|c: char| c.is_ascii_lowercase())
        && family
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !size.is_empty()
        && size
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `UTC`, or an IANA name of two or more `/`-separated parts of
/// `[A-Za-z0-9_+-]` (`Europe/Berlin`, `America/Argentina/Buenos_Aires`).
pub(super) fn timezone(s: &str) -> bool {
    if s == "UTC" {
        return true;
    }
    s.len() <= 64
        && s.split('/').count() >= 2
        && s.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
        })
}

/// An `http://` or `https://` URL with something after the scheme and no
/// whitespace or control characters.
/// `addr` or `addr:port`: an IPv4 address or a DNS name (labels of a-z, 0-9, '-'),
/// and a port from 1 to 65535.
pub(super) fn host_entry(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    port_ok && host_ok
}

pub(super) fn http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        !rest.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(dns_label("blog"), Ok(()));
        assert_eq!(dns_label("a-1"), Ok(()));
        assert_eq!(dns_label(&"a".repeat(63)), Ok(()));
        assert_eq!(dns_label(&"a".repeat(64)), Err("a".repeat(63)));
        assert_eq!(dns_label("Blog"), Err("blog".to_string()));
        assert_eq!(dns_label("-blog-"), Err("blog".to_string()));
        assert_eq!(dns_label("blog; rm -rf /"), Err("blog-rm-rf".to_string()));
        assert_eq!(dns_label(""), Err("app".to_string()));
        assert_eq!(dns_label("$$$"), Err("app".to_string()));
        assert_eq!(dns_label("café"), Err("caf".to_string()));
    }

    #[test]
    fn regions_and_zones() {
        assert!(region("us-east-1"));
        assert!(region("us-gov-west-1"));
        assert!(!region("US-EAST-1"));
        assert!(!region("us-east"));
        assert!(!region("us--east-1"));
        assert!(!region("1us-east-1"));
        assert!(zone("us-east-1a"));
        assert!(!zone("us-east-1a;"));
        assert!(!zone("us-east-1a-"));
    }

    #[test]
    fn images() {
        assert!(ami_id("ami-0abcdef1234567890"));
        assert!(!ami_id("ami-"));
        assert!(!ami_id("ami-xyz"));
        assert!(image_name("debian-12"));
        assert!(image_name("ubuntu_24.04"));
        assert!(!image_name("Debian 12"));
        assert!(!image_name(""));
    }

    #[test]
    fn host_entries() {
        for ok in ["10.0.0.11", "db1.example.com", "10.0.0.12:2222", "h1"] {
            assert!(host_entry(ok), "{ok}");
        }
        for bad in ["", "a b", "h:0", "h:99999", "-h", "h;rm", "$(x)", "h:"] {
            assert!(!host_entry(bad), "{bad}");
        }
    }

    #[test]
    fn users_instance_types_timezones_urls() {
        assert!(unix_user("admin"));
        assert!(unix_user("_svc-1"));
        assert!(!unix_user("1admin"));
        assert!(!unix_user("Admin"));
        assert!(!unix_user(&"a".repeat(33)));
        assert!(instance_type("t3.small"));
        assert!(instance_type("c5.2xlarge"));
        assert!(instance_type("u-6tb1.metal"));
        assert!(!instance_type("t3small"));
        assert!(!instance_type("T3.small"));
        assert!(!instance_type("t3."));
        assert!(!instance_type("3t.small"));
        assert!(!instance_type("t3.small.x"));
        assert!(timezone("UTC"));
        assert!(timezone("Europe/Berlin"));
        assert!(timezone("America/Argentina/Buenos_Aires"));
        assert!(timezone("Etc/GMT+5"));
        assert!(!timezone("CET"));
        assert!(!timezone("Europe/"));
        assert!(!timezone("Europe/Ber lin"));
        assert!(http_url("http://127.0.0.1:5000"));
        assert!(http_url("https://ec2.example.com"));
        assert!(!http_url("http://"));
        assert!(!http_url("ftp://x"));
        assert!(!http_url("http://a b"));
    }
}
