//! The smallest PNG writer the test picture needs: 8-bit RGB, one IDAT chunk of
//! stored (uncompressed) deflate blocks. A picture of a few hundred kilobytes does
//! not need compression, and an image crate is a lot of build for one picture.

/// An RGB picture, row by row.
pub struct Picture {
    pub width: u32,
    pub height: u32,
    /// `width * height` pixels, rows top to bottom.
    pub pixels: Vec<[u8; 3]>,
}

impl Picture {
    /// A picture whose pixel at (x, y) is `f(x, y)`.
    pub fn from_fn(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Self {
        let pixels = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Self {
            width,
            height,
            pixels,
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        self.pixels[(y * self.width + x) as usize]
    }

    /// The picture as a PNG file.
    pub fn png(&self) -> Vec<u8> {
        // Each row: filter type 0 (none), then its pixels.
        let mut raw = Vec::with_capacity(self.pixels.len() * 3 + self.height as usize);
        for row in self.pixels.chunks(self.width as usize) {
            raw.push(0);
            raw.extend(row.iter().flatten());
        }
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend(self.width.to_be_bytes());
        ihdr.extend(self.height.to_be_bytes());
        // bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace
        ihdr.extend([8, 2, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &zlib_stored(&raw));
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

/// One chunk: length, type, data, CRC of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// A zlib stream of stored deflate blocks (at most 65,535 bytes each).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(*block);
    }
    if blocks.is_empty() {
        out.extend([1, 0, 0, 0xff, 0xff]);
    }
    out.extend(adler32(data).to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// What a file's first bytes say it is, for its `Content-Type`.
pub fn content_type(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [0xff, 0xd8, 0xff, ..] => "image/jpeg",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => "image/webp",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what [`Picture::png`] writes, checking every CRC and the Adler
    /// checksum on the way: a reader as strict as a browser's about these.
    fn decode(png: &[u8]) -> Picture {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (mut at, mut idat, mut size) = (8, Vec::new(), (0, 0));
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let body = &png[at + 4..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc32(body), crc, "chunk CRC");
            match &body[..4] {
                b"IHDR" => {
                    size = (
                        u32::from_be_bytes(body[4..8].try_into().unwrap()),
                        u32::from_be_bytes(body[8..12].try_into().unwrap()),
                    );
                    assert_eq!(&body[12..17], &[8, 2, 0, 0, 0]);
                }
                b"IDAT" => idat.extend(&body[4..]),
                _ => {}
            }
            at += 12 + len;
        }
        // zlib header, stored blocks, Adler-32
        assert_eq!((u16::from(idat[0]) << 8 | u16::from(idat[1])) % 31, 0);
        let (mut raw, mut p) = (Vec::new(), 2);
        loop {
            let last = idat[p] & 1 == 1;
            let len = u16::from_le_bytes([idat[p + 1], idat[p + 2]]);
            let nlen = u16::from_le_bytes([idat[p + 3], idat[p + 4]]);
            assert_eq!(len, !nlen);
            raw.extend(&idat[p + 5..p + 5 + len as usize]);
            p += 5 + len as usize;
            if last {
                break;
            }
        }
        assert_eq!(adler32(&raw).to_be_bytes(), idat[p..p + 4]);
        let row = size.0 as usize * 3 + 1;
        let pixels = raw
            .chunks(row)
            .flat_map(|r| {
                assert_eq!(r[0], 0, "filter none");
                r[1..]
                    .chunks(3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect::<Vec<_>>()
            })
            .collect();
        Picture {
            width: size.0,
            height: size.1,
            pixels,
        }
    }

    #[test]
    fn what_is_written_reads_back_pixel_for_pixel() {
        let pic = Picture::from_fn(300, 250, |x, y| [x as u8, y as u8, (x ^ y) as u8]);
        let png = pic.png();
        assert!(png.len() > 300 * 250 * 3, "several stored blocks");
        let back = decode(&png);
        assert_eq!((back.width, back.height), (300, 250));
        assert_eq!(back.pixels, pic.pixels);
        assert_eq!(content_type(&png), "image/png");
    }

    #[test]
    fn the_checksums_are_the_standard_ones() {
        // CRC-32 of "IEND" is in every PNG: ae 42 60 82.
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        // Adler-32 of "Wikipedia", the worked example of the algorithm's definition.
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(content_type(b"\xff\xd8\xff\xe0"), "image/jpeg");
        assert_eq!(content_type(b"hello"), "application/octet-stream");
    }
}
