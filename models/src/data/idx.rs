//! The IDX file format, as used by MNIST and Fashion-MNIST.
//!
//! An IDX file is a tiny header followed by the raw array, everything big-endian:
//!
//! ```text
//! offset 0   magic: 0x00 0x00 <type> <ndims>     type 0x08 = unsigned byte
//! offset 4   ndims sizes, each a u32             e.g. 60000, 28, 28
//! offset 4 + 4·ndims   the elements, row-major   60000·28·28 bytes
//! ```
//!
//! There is no checksum and no end marker, so the only way to notice a damaged or wrong file is
//! to check that every part of the header makes sense and that the data is exactly as long as the
//! sizes say. That is what [`read_idx`] does, turning each problem into a [`Error::Data`] that names
//! the file instead of panicking or quietly returning garbage.

use super::Error;
use byteorder::{BigEndian, ByteOrder, LittleEndian};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

/// An IDX array of unsigned bytes (the only element type Fashion-MNIST uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The size of each dimension, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The elements in row-major order; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Type code of unsigned bytes, the third byte of the magic number.
const UNSIGNED_BYTE: u8 = 0x08;
/// The most dimensions we accept. IDX allows up to 255, but nothing real has more than 4, and a
/// large count is far more likely to be a wrong file than a 200-dimensional array.
const MAX_DIMS: usize = 4;
/// Every gzip stream starts with these two bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The expected form of the magic number, spelled out for error messages.
const EXPECTED_MAGIC: &str = "an IDX file of unsigned bytes starts with 0x000008NN \
    (two zero bytes, type 0x08, then NN = the number of dimensions, 1 to 4)";

/// Reads an IDX file, gzip-compressed (name ends in .gz, or starts with the gzip magic 1f 8b) or not.
///
/// The whole file is read into memory: Fashion-MNIST's largest file is 47 MB unpacked, and one
/// big read followed by one decompression pass is both simpler and faster than streaming.
///
/// A file named `.gz` whose contents start with IDX's two zero bytes is read as plain IDX: some
/// browsers unpack gzip files while downloading them but keep the `.gz` name.
pub fn read_idx(path: &Path) -> Result<IdxArray, Error> {
    let raw = std::fs::read(path).map_err(|e| Error::data(path, format!("cannot read: {e}")))?;
    let bytes = if is_gzip(path, &raw) {
        gunzip(&raw).map_err(|e| {
            Error::data(
                path,
                format!("cannot decompress (corrupt or incomplete gzip data): {e}"),
            )
        })?
    } else {
        raw
    };
    parse_idx(bytes).map_err(|message| Error::data(path, message))
}

/// Whether `raw` (the contents of `path`) should go through the gzip decoder.
fn is_gzip(path: &Path, raw: &[u8]) -> bool {
    if raw.starts_with(&GZIP_MAGIC) {
        return true;
    }
    let named_gz = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"));
    // A gzip stream never starts with zero bytes; an IDX file always does (see `read_idx`).
    // Anything else named .gz goes to the decoder, whose error ("invalid gzip header") is the
    // most helpful thing to say about it.
    named_gz && !raw.starts_with(&[0, 0])
}

/// Decompresses a whole gzip file (all of its members, should there be several).
fn gunzip(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    // A gzip file ends with the unpacked size mod 2³²: reserving it up front saves the vector's
    // repeated doubling. It is only a hint (a damaged file can claim anything), so it is capped
    // at deflate's best possible ratio, about 1032:1, and a failed reservation is ignored.
    if let Some(trailer) = compressed.len().checked_sub(4).map(|at| &compressed[at..]) {
        let claimed = LittleEndian::read_u32(trailer) as usize;
        let plausible = claimed.min(compressed.len().saturating_mul(1032));
        let _ = out.try_reserve_exact(plausible);
    }
    MultiGzDecoder::new(compressed).read_to_end(&mut out)?;
    Ok(out)
}

/// Checks and splits the (unpacked) bytes of an IDX file. The error is a message without the
/// file name, which the caller adds.
fn parse_idx(mut bytes: Vec<u8>) -> Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "truncated: header needs 4 bytes, file has {}",
            bytes.len()
        ));
    }
    let magic = BigEndian::read_u32(&bytes[..4]);
    let (element_type, ndims) = (bytes[2], usize::from(bytes[3]));
    let wrong_magic =
        |why: String| format!("wrong magic number 0x{magic:08x}: {why}; {EXPECTED_MAGIC}");
    if bytes[0] != 0 || bytes[1] != 0 {
        let mut why = "the first two bytes are not zero".to_string();
        if bytes[0] == b'<' {
            why.push_str(
                " (the file looks like an HTML page: \
                 was a web page saved instead of the raw file?)",
            );
        }
        return Err(wrong_magic(why));
    }
    if element_type != UNSIGNED_BYTE {
        return Err(wrong_magic(format!(
            "element type 0x{element_type:02x} ({}) is not supported, only 0x08 (unsigned byte) is",
            type_name(element_type)
        )));
    }
    if !(1..=MAX_DIMS).contains(&ndims) {
        return Err(wrong_magic(format!(
            "{ndims} dimensions, expected 1 to {MAX_DIMS}"
        )));
    }

    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(format!(
            "truncated: header needs {header_len} bytes, file has {}",
            bytes.len()
        ));
    }
    let dims = bytes[4..header_len]
        .chunks_exact(4)
        .map(|size| {
            let size = BigEndian::read_u32(size);
            usize::try_from(size)
                .map_err(|_| format!("size {size} does not fit this machine's usize"))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    // Four u32 sizes can multiply to more than 2⁶⁴; a wrapped product would make a wrong length
    // look right.
    let needed = dims
        .iter()
        .try_fold(1usize, |total, &size| total.checked_mul(size))
        .ok_or_else(|| format!("dims {dims:?} hold more elements than this machine can address"))?;

    let found = bytes.len() - header_len;
    if found < needed {
        return Err(format!(
            "truncated: dims {dims:?} need {needed} bytes of data, found {found}"
        ));
    }
    if found > needed {
        return Err(format!(
            "has {} trailing bytes after the data (dims {dims:?} need {needed} bytes, found {found})",
            found - needed
        ));
    }
    // Drop the header by sliding the data down within the same buffer: no second 47 MB vector.
    bytes.drain(..header_len);
    Ok(IdxArray { dims, data: bytes })
}

/// The IDX element types, for naming the one a file has when it is not unsigned bytes.
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "16-bit integer",
        0x0c => "32-bit integer",
        0x0d => "32-bit float",
        0x0e => "64-bit float",
        _ => "not an IDX type",
    }
}

/// Builders of IDX files for the tests of this module and of `fashion_mnist`.
#[cfg(test)]
pub(crate) mod testing {
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    /// The bytes of an unsigned-byte IDX file with these `dims` and `data` (not checked).
    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        for size in dims {
            bytes.extend_from_slice(&size.to_be_bytes());
        }
        bytes.extend_from_slice(data);
        bytes
    }

    /// `bytes`, gzip-compressed.
    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{gzip, idx_bytes};
    use super::*;
    use std::path::PathBuf;

    /// Writes `bytes` to `name` in `dir` and returns its path.
    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A 3x2x2 array whose elements are 0, 1, ..., 11, as an IDX file.
    fn small() -> (Vec<u8>, IdxArray) {
        let data: Vec<u8> = (0..12).collect();
        let expected = IdxArray {
            dims: vec![3, 2, 2],
            data: data.clone(),
        };
        (idx_bytes(&[3, 2, 2], &data), expected)
    }

    /// Reads `bytes` written as `name` and returns the error's Display.
    fn error_of(name: &str, bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), name, bytes);
        let error = read_idx(&path).unwrap_err();
        assert_eq!(error.path(), Some(path.as_path()));
        error.to_string()
    }

    #[test]
    fn round_trip_plain() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, expected) = small();
        let path = write(dir.path(), "small-idx3-ubyte", &bytes);
        assert_eq!(read_idx(&path).unwrap(), expected);
    }

    #[test]
    fn round_trip_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, expected) = small();
        let path = write(dir.path(), "small-idx3-ubyte.gz", &gzip(&bytes));
        assert_eq!(read_idx(&path).unwrap(), expected);
    }

    #[test]
    fn gzip_is_recognised_by_its_magic_whatever_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, expected) = small();
        let path = write(dir.path(), "small-idx3-ubyte", &gzip(&bytes));
        assert_eq!(read_idx(&path).unwrap(), expected);
    }

    #[test]
    fn plain_file_named_gz_is_read_as_plain() {
        // What a browser that unpacks downloads leaves behind.
        let dir = tempfile::tempdir().unwrap();
        let (bytes, expected) = small();
        let path = write(dir.path(), "small-idx3-ubyte.gz", &bytes);
        assert_eq!(read_idx(&path).unwrap(), expected);
    }

    #[test]
    fn one_dimensional_and_empty_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "labels", &idx_bytes(&[4], &[9, 0, 3, 1]));
        assert_eq!(
            read_idx(&path).unwrap(),
            IdxArray {
                dims: vec![4],
                data: vec![9, 0, 3, 1]
            }
        );
        let path = write(dir.path(), "empty", &idx_bytes(&[0, 28, 28], &[]));
        assert_eq!(read_idx(&path).unwrap().dims, vec![0, 28, 28]);
    }

    #[test]
    fn truncated_data_is_an_error_naming_the_file() {
        let bytes = idx_bytes(&[60000, 28, 28], &[7; 1000]);
        let message = error_of("train-images-idx3-ubyte", &bytes);
        assert!(message.contains("truncated"), "{message}");
        assert!(message.contains("train-images-idx3-ubyte"), "{message}");
        assert!(
            message.contains("dims [60000, 28, 28] need 47040000 bytes of data, found 1000"),
            "{message}"
        );
    }

    #[test]
    fn truncated_header_is_an_error() {
        let message = error_of("short", &[0, 0]);
        assert!(
            message.contains("truncated: header needs 4 bytes, file has 2"),
            "{message}"
        );
        // The magic promises 3 sizes (16 header bytes) but only one follows.
        let message = error_of("short", &[0, 0, 8, 3, 0, 0, 0, 1]);
        assert!(
            message.contains("truncated: header needs 16 bytes, file has 8"),
            "{message}"
        );
        let message = error_of("empty", &[]);
        assert!(message.contains("truncated"), "{message}");
    }

    #[test]
    fn wrong_magic_is_an_error() {
        let mut bytes = small().0;
        bytes[0] = 0x12;
        let message = error_of("bad", &bytes);
        assert!(message.contains("magic"), "{message}");
        assert!(message.contains("0x12000803"), "{message}");
        assert!(message.contains("0x000008NN"), "{message}");

        let message = error_of("page.html", b"<!DOCTYPE html><html>...");
        assert!(
            message.contains("magic") && message.contains("HTML"),
            "{message}"
        );
    }

    #[test]
    fn other_element_types_are_refused_by_code() {
        let mut bytes = small().0;
        bytes[2] = 0x0d;
        let message = error_of("floats", &bytes);
        assert!(message.contains("magic"), "{message}");
        assert!(message.contains("0x0d (32-bit float)"), "{message}");
    }

    #[test]
    fn dimension_counts_outside_1_to_4_are_refused() {
        for ndims in [0u8, 5, 255] {
            let mut bytes = vec![0, 0, 8, ndims];
            bytes.extend(std::iter::repeat_n(0, 4 * usize::from(ndims)));
            let message = error_of("dims", &bytes);
            assert!(message.contains("magic"), "{message}");
            assert!(
                message.contains(&format!("{ndims} dimensions")),
                "{message}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = small().0;
        bytes.extend_from_slice(&[1, 2, 3]);
        let message = error_of("long", &bytes);
        assert!(
            message.contains("has 3 trailing bytes after the data"),
            "{message}"
        );
    }

    #[test]
    fn huge_dims_do_not_overflow() {
        let bytes = idx_bytes(&[u32::MAX; 4], &[1, 2, 3]);
        let message = error_of("huge", &bytes);
        assert!(message.contains("more elements than"), "{message}");
    }

    #[test]
    fn corrupt_gzip_is_an_error_naming_the_file() {
        let (bytes, _) = small();
        let mut packed = gzip(&bytes);
        // Damage the deflate stream (it starts after the 10-byte gzip header).
        for byte in &mut packed[10..16] {
            *byte ^= 0xff;
        }
        let message = error_of("damaged.gz", &packed);
        assert!(message.contains("damaged.gz"), "{message}");

        // A .gz file that is neither gzip nor IDX.
        let message = error_of("notes.gz", b"hello");
        assert!(message.contains("gzip"), "{message}");
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let (bytes, _) = small();
        let packed = gzip(&bytes);
        for keep in [packed.len() / 2, packed.len() - 4, 11] {
            let message = error_of("cut.gz", &packed[..keep]);
            assert!(message.contains("cut.gz"), "{message}");
        }
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing-here");
        let error = read_idx(&path).unwrap_err();
        assert_eq!(error.path(), Some(path.as_path()));
        assert!(error.to_string().contains("cannot read"), "{error}");
    }
}
