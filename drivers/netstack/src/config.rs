//! How the interface gets its address: DHCPv4, or a static address and
//! gateway from the kernel command line.
//!
//! The parser is pure (words in, [`NetConfig`] out) so that the host tests
//! and the fuzz target `fuzz_net_config` reach all of it.

use core::fmt;
use core::net::Ipv4Addr;

/// An IPv4 address with its prefix length (`10.0.2.15/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The address.
    pub address: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// How the interface is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetConfig {
    /// Ask a DHCPv4 server for a lease (the default).
    Dhcp,
    /// A fixed address, with an optional default gateway.
    Static {
        /// Address and prefix.
        address: Ipv4Cidr,
        /// The default route, if any.
        gateway: Option<Ipv4Addr>,
    },
}

impl fmt::Display for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dhcp => f.write_str("dhcp"),
            Self::Static {
                address,
                gateway: Some(gateway),
            } => write!(f, "static {address} gateway {gateway}"),
            Self::Static {
                address,
                gateway: None,
            } => write!(f, "static {address} no gateway"),
        }
    }
}

/// Why a command line's network words were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `ip=` is not `a.b.c.d/prefix` (or `dhcp`).
    BadAddress,
    /// The prefix is not a number in 0..=32.
    BadPrefix,
    /// `gateway=` is not `a.b.c.d`.
    BadGateway,
    /// `gateway=` without a static `ip=`.
    GatewayWithoutAddress,
    /// The gateway is outside the address's subnet.
    GatewayOffLink,
    /// The address is unusable for a host (unspecified, broadcast,
    /// multicast, loopback).
    UnusableAddress,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadAddress => "ip= wants a.b.c.d/prefix or dhcp",
            Self::BadPrefix => "the prefix wants 0..=32",
            Self::BadGateway => "gateway= wants a.b.c.d",
            Self::GatewayWithoutAddress => "gateway= needs a static ip=",
            Self::GatewayOffLink => "the gateway is outside the subnet",
            Self::UnusableAddress => "the address is not a host address",
        })
    }
}

impl NetConfig {
    /// From the values of the `ip=` and `gateway=` switches: no `ip=` (or
    /// `ip=dhcp`) is DHCP; `ip=A.B.C.D/P` a static address, `/P` optional
    /// (32 without it); `gateway=A.B.C.D` its default route.
    pub fn from_values(ip: Option<&str>, gateway: Option<&str>) -> Result<Self, ConfigError> {
        let gateway = match gateway {
            None => None,
            Some(text) => Some(
                text.parse::<Ipv4Addr>()
                    .map_err(|_| ConfigError::BadGateway)?,
            ),
        };
        let Some(ip) = ip.filter(|ip| *ip != "dhcp") else {
            return match gateway {
                None => Ok(Self::Dhcp),
                Some(_) => Err(ConfigError::GatewayWithoutAddress),
            };
        };
        let (address, prefix) = match ip.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (ip, None),
        };
        let address = address
            .parse::<Ipv4Addr>()
            .map_err(|_| ConfigError::BadAddress)?;
        let prefix = match prefix {
            None => 32,
            Some(text) => parse_prefix(text)?,
        };
        if address.is_unspecified()
            || address.is_broadcast()
            || address.is_multicast()
            || address.is_loopback()
        {
            return Err(ConfigError::UnusableAddress);
        }
        if let Some(gateway) = gateway
            && !same_subnet(address, gateway, prefix)
        {
            return Err(ConfigError::GatewayOffLink);
        }
        Ok(Self::Static {
            address: Ipv4Cidr { address, prefix },
            gateway,
        })
    }

    /// From command-line words: the last `ip=` and `gateway=` win, other
    /// words are ignored (`ip=10.0.2.15/24 gateway=10.0.2.2`).
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Self, ConfigError> {
        let mut ip = None;
        let mut gateway = None;
        for word in words {
            if let Some(value) = word.strip_prefix("ip=") {
                ip = Some(value);
            } else if let Some(value) = word.strip_prefix("gateway=") {
                gateway = Some(value);
            }
        }
        Self::from_values(ip, gateway)
    }
}

fn parse_prefix(text: &str) -> Result<u8, ConfigError> {
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::BadPrefix);
    }
    match text.parse::<u8>() {
        Ok(prefix) if prefix <= 32 => Ok(prefix),
        _ => Err(ConfigError::BadPrefix),
    }
}

/// Whether `a` and `b` share the first `prefix` bits.
pub(crate) fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn words(line: &str) -> Result<NetConfig, ConfigError> {
        NetConfig::from_words(line.split_whitespace())
    }

    #[test]
    fn no_words_is_dhcp() {
        assert_eq!(words("exit=qemu net=http"), Ok(NetConfig::Dhcp));
        assert_eq!(words("ip=dhcp"), Ok(NetConfig::Dhcp));
    }

    #[test]
    fn static_address_and_gateway() {
        let config = words("net=http ip=10.0.2.15/24 gateway=10.0.2.2").unwrap();
        assert_eq!(
            config,
            NetConfig::Static {
                address: Ipv4Cidr {
                    address: Ipv4Addr::new(10, 0, 2, 15),
                    prefix: 24
                },
                gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            }
        );
        assert_eq!(config.to_string(), "static 10.0.2.15/24 gateway 10.0.2.2");
        assert_eq!(
            words("ip=192.168.1.9").unwrap().to_string(),
            "static 192.168.1.9/32 no gateway"
        );
    }

    #[test]
    fn bad_words_are_refused() {
        assert_eq!(words("ip=10.0.2/24"), Err(ConfigError::BadAddress));
        assert_eq!(words("ip=10.0.2.15/33"), Err(ConfigError::BadPrefix));
        assert_eq!(words("ip=10.0.2.15/"), Err(ConfigError::BadPrefix));
        assert_eq!(words("ip=10.0.2.15/+8"), Err(ConfigError::BadPrefix));
        assert_eq!(
            words("ip=10.0.2.15/24 gateway=x"),
            Err(ConfigError::BadGateway)
        );
        assert_eq!(
            words("gateway=10.0.2.2"),
            Err(ConfigError::GatewayWithoutAddress)
        );
        assert_eq!(
            words("ip=10.0.2.15/24 gateway=10.0.3.2"),
            Err(ConfigError::GatewayOffLink)
        );
        assert_eq!(words("ip=0.0.0.0/0"), Err(ConfigError::UnusableAddress));
        assert_eq!(words("ip=224.0.0.1/4"), Err(ConfigError::UnusableAddress));
    }

    #[test]
    fn subnets() {
        let a = Ipv4Addr::new(10, 0, 2, 15);
        assert!(same_subnet(a, Ipv4Addr::new(10, 0, 2, 2), 24));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 0, 3, 2), 24));
        assert!(same_subnet(a, Ipv4Addr::new(1, 2, 3, 4), 0));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 0, 2, 16), 32));
    }
}
