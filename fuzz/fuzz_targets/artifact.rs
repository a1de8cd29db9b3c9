//! What `kdeploy push` reads from a registry and a command line: a previous artifact's tar (whatever
//! the bytes, reading returns; what it reads packs and reads back the same) and an `oci://` reference
//! (what parses prints as text that parses to the same reference).
#![no_main]

use kdeploy::publish::archive::{read_tar, read_tar_gz, tar_gz};
use kdeploy::publish::oci::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    if selector % 2 == 0 {
        if let Ok(files) = read_tar(rest) {
            let packed = tar_gz(&files);
            assert_eq!(read_tar_gz(&packed, usize::MAX >> 1).as_ref(), Ok(&files));
        }
    } else if let Ok(text) = std::str::from_utf8(rest)
        && let Ok(reference) = Reference::parse(text)
    {
        assert_eq!(Reference::parse(&reference.to_string()), Ok(reference));
    }
});
