//! IPv4 addresses as four 256-way octets.

pub fn octets(addr: u32) -> [u8; 4] {
    addr.to_be_bytes()
}

pub fn format(octets: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(octets).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let a = u32::from(std::net::Ipv4Addr::new(42, 219, 156, 227));
        assert_eq!(super::format(super::octets(a)), "42.219.156.227");
    }
}
