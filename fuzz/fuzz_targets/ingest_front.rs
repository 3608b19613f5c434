//! What reaches the ingest gateway before any RTMP: a PROXY protocol header (v2 binary or v1
//! text, from the network when `--proxy-protocol` is on) and the routing table (the operator's
//! ConfigMap, refused whole when any route is malformed). The first byte picks the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_crds::ingest_routes::RouteTable;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    if first % 2 == 0 {
        let peer = "10.0.0.1:5000".parse().expect("address");
        let _ = roomcast_ingest::proxy::client_address(rest, peer);
    } else if let Ok(table) = RouteTable::parse(rest) {
        let _ = table.index();
    }
});
