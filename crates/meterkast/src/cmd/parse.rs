//! `meterkast parse`: raw meter output in, one JSON object per accepted frame out.

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use meterkast_codec::{Decoder, Keys};

use crate::json::FrameJson;

/// Decode raw meter output (files or stdin) into JSON Lines on stdout.
///
/// Reads DSMR P1 telegrams of every version (2.2 to 5.0.x), Belgian e-MUCS, Luxembourg
/// Smarty (encrypted), Austrian M-Bus and P1, HDLC DLMS/COSEM, raw bytes or hex text
/// (one frame per line); the kind of meter is detected from the data itself.
/// Each accepted frame becomes one JSON object on stdout. Each rejected frame gives one
/// line on stderr saying why; a summary line ends stderr.
///
/// Exit status: 0 when the input was read, 2 on usage or I/O errors, and with --strict
/// 1 when any frame was rejected.
///
/// Examples:
///   meterkast parse capture.txt
///   cat /dev/ttyUSB0 | meterkast parse
///   meterkast parse --quiet --strict day1.txt day2.txt
///   meterkast parse --key 36C66639E48A8CA4D6BC8B282A793BBB evn-capture.hex
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ParseArgs {
    /// Files with raw meter output; reads stdin when none are given (or for `-`).
    pub files: Vec<PathBuf>,
    /// The meter's encryption key (Smarty, Austrian meters), 32 hex digits. Ask your
    /// grid operator for it.
    #[arg(long, env = "MK_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The authentication key, 32 hex digits. Without it, Smarty's published default is
    /// tried, then frames are accepted only when their content proves itself.
    #[arg(long, env = "MK_AUTH_KEY", hide_env_values = true)]
    pub auth_key: Option<String>,
    /// Exit with status 1 when any frame was rejected.
    #[arg(long)]
    pub strict: bool,
    /// Decode everything but print only the summary (for benchmarks and scripts).
    #[arg(long)]
    pub quiet: bool,
}

/// What one `parse` run saw.
#[derive(Default, Debug)]
pub struct Summary {
    /// Frames output.
    pub accepted: u64,
    /// Frames rejected, by cause.
    pub rejected: Vec<(&'static str, u64)>,
}

impl Summary {
    fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }

    fn add(&mut self, d: &Decoder) {
        let s = d.stats();
        self.accepted += s.accepted;
        for (cause, n) in s.rejected {
            match self.rejected.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, m)) => *m += n,
                None => self.rejected.push((cause, n)),
            }
        }
    }

    fn line(&self) -> String {
        let mut s = format!(
            "parse: {} accepted, {} rejected",
            self.accepted,
            self.rejected_total()
        );
        if !self.rejected.is_empty() {
            let causes: Vec<String> = self
                .rejected
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            s.push_str(&format!(" ({})", causes.join(", ")));
        }
        s
    }
}

/// Decodes one input to the end, writing frames to `out` and rejections to stderr.
fn decode_input(
    name: &str,
    mut input: impl Read,
    args: &ParseArgs,
    keys: Keys,
    out: &mut impl Write,
    summary: &mut Summary,
) -> Result<()> {
    let mut decoder = Decoder::with_keys(keys);
    let mut buf = vec![0u8; 64 * 1024];
    let stderr = io::stderr();
    let drain = |decoder: &mut Decoder, out: &mut dyn Write| -> Result<()> {
        while let Some(ev) = decoder.next() {
            match ev {
                Ok(frame) => {
                    if let Some(w) = &frame.warning {
                        writeln!(
                            stderr.lock(),
                            "{name}: warning ({}): {}",
                            w.cause,
                            w.message
                        )?;
                    }
                    if !args.quiet {
                        serde_json::to_writer(&mut *out, &FrameJson::new(&frame.telegram))?;
                        out.write_all(b"\n")?;
                    }
                }
                Err(rejection) => {
                    writeln!(
                        stderr.lock(),
                        "{name}: rejected ({}): {}",
                        rejection.cause,
                        rejection.message
                    )?;
                }
            }
        }
        Ok(())
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("{name}: read failed")),
        };
        decoder.push(&buf[..n]);
        drain(&mut decoder, out)?;
    }
    decoder.end_of_input();
    drain(&mut decoder, out)?;
    summary.add(&decoder);
    Ok(())
}

/// Runs the command; returns the process exit code.
pub fn run(args: ParseArgs) -> Result<i32> {
    let keys = Keys {
        encryption: args
            .key
            .as_deref()
            .map(|k| crate::source::parse_key("--key", k))
            .transpose()?,
        authentication: args
            .auth_key
            .as_deref()
            .map(|k| crate::source::parse_key("--auth-key", k))
            .transpose()?,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut summary = Summary::default();
    let stdin_only = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin_only[..]
    } else {
        &args.files[..]
    };
    for f in files {
        if f.as_os_str() == "-" {
            decode_input(
                "stdin",
                io::stdin().lock(),
                &args,
                keys,
                &mut out,
                &mut summary,
            )?;
        } else {
            let name = f.display().to_string();
            let file = std::fs::File::open(f).with_context(|| {
                format!("cannot open {name} (does it exist, and may you read it?)")
            })?;
            decode_input(&name, file, &args, keys, &mut out, &mut summary)?;
        }
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        r => r.context("writing to stdout failed")?,
    }
    eprintln!("{}", summary.line());
    Ok(if args.strict && summary.rejected_total() > 0 {
        1
    } else {
        0
    })
}
