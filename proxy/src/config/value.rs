//! Values written the same way in the file, on the command line and in
//! Ingress annotations: sizes as nginx writes them, networks, and the
//! limits built on them.
//!
//! One function per setting, used by the validator (which names the field)
//! and by clap (`value_parser`, which names the flag), so both accept and
//! refuse the same things with the same words.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::memory::MaxMemory;

/// Why a value was refused. The caller adds which field or flag it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not a size like 512k, 10m or 1g")]
    NotASize(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// A size outside the setting's bounds, which the message gives.
    #[error("must be {0}")]
    SizeOutOfBounds(&'static str),
    /// A count outside `range`.
    #[error("{value:?} is out of range {range}")]
    OutOfRange { value: String, range: &'static str },
    #[error("{0:?} is too small: the guard takes 16m or more (or 0 for none)")]
    MemoryTooSmall(String),
    #[error("{0:?} is not a network like 10.0.0.0/8 or an address")]
    NotANetwork(String),
}

/// `limits.max_uri`: a size of 256 bytes or more, or 0 for no limit.
pub fn parse_max_uri(s: &str) -> Result<usize, ValueError> {
    match parse_size(s)? {
        None => Ok(usize::MAX),
        Some(n) if n >= 256 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(_) => Err(ValueError::SizeOutOfBounds("256 bytes or more")),
    }
}

/// `limits.max_header_size`: 16k (the fast path's whole head, which it
/// takes itself) to 1m.
pub fn parse_max_header_size(s: &str) -> Result<usize, ValueError> {
    match parse_size(s)? {
        Some(n) if (16 << 10..=1 << 20).contains(&n) => Ok(n as usize),
        _ => Err(ValueError::SizeOutOfBounds("between 16k and 1m")),
    }
}

/// `limits.max_headers`: 64 (what the fast path takes itself) to 10000.
pub fn parse_max_headers(s: &str) -> Result<usize, ValueError> {
    match s.trim().parse::<usize>() {
        Ok(n @ 64..=10_000) => Ok(n),
        _ => Err(ValueError::OutOfRange {
            value: s.to_owned(),
            range: "64..=10000",
        }),
    }
}

/// `limits.http2_max_concurrent_streams`: 1 to 10000.
pub fn parse_http2_streams(s: &str) -> Result<u32, ValueError> {
    match s.trim().parse::<u32>() {
        Ok(n @ 1..=10_000) => Ok(n),
        _ => Err(ValueError::OutOfRange {
            value: s.to_owned(),
            range: "1..=10000",
        }),
    }
}

/// An HTTP/2 window: 64k (the protocol's own default) to 1g.
pub fn parse_http2_window(s: &str) -> Result<u32, ValueError> {
    match parse_size(s)? {
        Some(n) if (64 << 10..=1 << 30).contains(&n) => Ok(n as u32),
        _ => Err(ValueError::SizeOutOfBounds("between 64k and 1g")),
    }
}

/// `limits.max_memory`: `auto`, `0` (no guard) or a size of 16m or more.
pub fn parse_max_memory(s: &str) -> Result<MaxMemory, ValueError> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(MaxMemory::Auto);
    }
    match parse_size(s)? {
        None => Ok(MaxMemory::Off),
        Some(n) if n >= 16 << 20 => Ok(MaxMemory::Bytes(n)),
        Some(_) => Err(ValueError::MemoryTooSmall(s.to_owned())),
    }
}

/// A size as nginx writes it: bytes, or a number with `k`, `m` or `g`
/// (powers of 1024). `0` means no limit (`None`).
pub fn parse_size(s: &str) -> Result<Option<u64>, ValueError> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let not_a_size = || ValueError::NotASize(s.to_owned());
    let n: u64 = digits.parse().map_err(|_| not_a_size())?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "ki" => 1 << 10,
        "m" | "mb" | "mi" => 1 << 20,
        "g" | "gb" | "gi" => 1 << 30,
        _ => return Err(not_a_size()),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| ValueError::TooLarge(s.to_owned()))?;
    Ok((bytes > 0).then_some(bytes))
}

/// A network as `10.0.0.0/8`, or one address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, ValueError> {
    let t = s.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| ValueError::NotANetwork(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_before() {
        let e = |r: Result<usize, ValueError>| r.unwrap_err().to_string();
        assert_eq!(e(parse_max_uri("100")), "must be 256 bytes or more");
        assert_eq!(e(parse_max_header_size("2m")), "must be between 16k and 1m");
        assert_eq!(
            e(parse_max_headers("7")),
            "\"7\" is out of range 64..=10000"
        );
        assert_eq!(
            e(parse_max_uri("12q")),
            "\"12q\" is not a size like 512k, 10m or 1g"
        );
        assert_eq!(
            e(parse_max_uri("99999999999999g")),
            "\"99999999999999g\" is too large"
        );
        assert_eq!(
            parse_max_memory("1m").unwrap_err().to_string(),
            "\"1m\" is too small: the guard takes 16m or more (or 0 for none)"
        );
        assert_eq!(
            parse_cidr("10.0.0/8").unwrap_err().to_string(),
            "\"10.0.0/8\" is not a network like 10.0.0.0/8 or an address"
        );
    }

    #[test]
    fn sizes_and_networks() {
        assert_eq!(parse_size("512k"), Ok(Some(512 << 10)));
        assert_eq!(parse_size("0"), Ok(None));
        assert_eq!(parse_max_uri("0"), Ok(usize::MAX));
        assert_eq!(parse_max_memory("auto"), Ok(MaxMemory::Auto));
        assert_eq!(parse_cidr("10.1.2.3/8"), Ok("10.0.0.0/8".parse().unwrap()));
    }
}
