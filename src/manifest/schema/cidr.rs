//! IPv4 CIDR blocks (`203.0.113.0/24`) as written in firewall rules.
//!
//! Only the syntax is checked: host bits beyond the prefix are allowed
//! (`10.0.0.1/8` means the same as `10.0.0.0/8` to EC2).

/// `Ok` for `a.b.c.d/n` with every octet 0–255 in decimal (no leading zeros,
/// which some tools read as octal) and `n` 0–32; otherwise why not.
pub(super) fn ipv4_cidr(s: &str) -> Result<(), String> {
    let Some((address, prefix)) = s.split_once('/') else {
        return Err("it has no `/prefix` length".to_string());
    };
    let octets: Vec<&str> = address.split('.').collect();
    if octets.len() != 4 {
        return Err(format!(
            "the address must have 4 octets, found {}",
            octets.len()
        ));
    }
    for octet in octets {
        decimal(octet, 255).map_err(|why| format!("octet {why}"))?;
    }
    decimal(prefix, 32).map_err(|why| format!("prefix length {why}"))
}

/// A decimal number from 0 to `max`, written without leading zeros.
fn decimal(s: &str, max: u32) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".to_string());
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a number"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!("{s:?} has a leading zero"));
    }
    match s.parse::<u32>() {
        Ok(n) if n <= max => Ok(()),
        _ => Err(format!("{s} is greater than {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_blocks() {
        for ok in [
            "0.0.0.0/0",
            "203.0.113.0/24",
            "10.0.0.1/32",
            "255.255.255.255/8",
        ] {
            assert_eq!(ipv4_cidr(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn says_what_is_wrong() {
        let cases = [
            ("10.0.0.0", "it has no `/prefix` length"),
            ("10.0.0/8", "the address must have 4 octets, found 3"),
            ("10.0.0.300/8", "octet 300 is greater than 255"),
            ("10.0.0.1/33", "prefix length 33 is greater than 32"),
            ("10.0.0.01/8", "octet \"01\" has a leading zero"),
            ("10.0.0.x/8", "octet \"x\" is not a number"),
            ("10.0.0.1/", "prefix length is empty"),
            ("10..0.1/8", "octet is empty"),
            ("10.0.0.+1/8", "octet \"+1\" is not a number"),
            (
                "10.0.0.99999999999/8",
                "octet 99999999999 is greater than 255",
            ),
        ];
        for (input, why) in cases {
            assert_eq!(ipv4_cidr(input), Err(why.to_string()), "{input}");
        }
    }
}
