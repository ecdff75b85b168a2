//! The stylesheet and script of every page, embedded in the binary. The engine serves
//! them under `/app/assets/{name}` with a long cache lifetime; pages link them with
//! `?v={version}`, a hash of their contents, so a new build is fetched at once.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

/// The asset named `name`, if there is one.
pub fn get(name: &str) -> Option<Asset> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, bytes)| Asset {
            bytes,
            content_type,
        })
}

/// A short hash (FNV-1a, 64 bit) of every asset, for cache-busting links.
pub fn version() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (_, _, bytes) in FILES {
        for b in *bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}
