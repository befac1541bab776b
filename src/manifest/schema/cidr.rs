//! IPv4 CIDR blocks (`203.0.113.0/24`) as written in firewall rules.
//!
//! The address is parsed by std's `Ipv4Addr` (four decimal octets, no
//! leading zeros, which some tools read as octal), the block is an
//! `ipnet::Ipv4Net` (which checks the prefix length). Host bits beyond the
//! prefix are allowed (`10.0.0.1/8` means the same as `10.0.0.0/8` to EC2).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The block for `a.b.c.d/n`; otherwise why it is not one.
pub(super) fn ipv4_cidr(s: &str) -> Result<Ipv4Net, String> {
    let (address, prefix) = s
        .split_once('/')
        .ok_or_else(|| "it has no `/prefix` length".to_string())?;
    let address: Ipv4Addr = address.parse().map_err(|_| {
        format!(
            "{address:?} is not an IPv4 address (four numbers from 0 to 255, without leading zeros)"
        )
    })?;
    let not_a_length = || format!("the prefix length {prefix:?} is not a number from 0 to 32");
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_length());
    }
    let length: u8 = prefix.parse().map_err(|_| not_a_length())?;
    Ipv4Net::new(address, length).map_err(|_| not_a_length())
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
            assert_eq!(ipv4_cidr(ok).map(|n| n.to_string()), Ok(ok.to_string()));
        }
        assert_eq!(
            ipv4_cidr("10.0.0.1/8").unwrap().trunc().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn says_what_is_wrong() {
        let not_ipv4 = |a: &str| {
            format!(
                "{a:?} is not an IPv4 address (four numbers from 0 to 255, without leading zeros)"
            )
        };
        let not_a_length =
            |p: &str| format!("the prefix length {p:?} is not a number from 0 to 32");
        let cases = [
            ("10.0.0.0", "it has no `/prefix` length".to_string()),
            ("10.0.0/8", not_ipv4("10.0.0")),
            ("10.0.0.300/8", not_ipv4("10.0.0.300")),
            ("10.0.0.01/8", not_ipv4("10.0.0.01")),
            ("10.0.0.x/8", not_ipv4("10.0.0.x")),
            ("10..0.1/8", not_ipv4("10..0.1")),
            ("10.0.0.+1/8", not_ipv4("10.0.0.+1")),
            ("::1/128", not_ipv4("::1")),
            ("10.0.0.1/33", not_a_length("33")),
            ("10.0.0.1/", not_a_length("")),
            ("10.0.0.1/+8", not_a_length("+8")),
            ("10.0.0.1/999", not_a_length("999")),
            ("10.0.0.1/8 ", not_a_length("8 ")),
        ];
        for (input, why) in cases {
            assert_eq!(ipv4_cidr(input), Err(why), "{input}");
        }
    }
}
