//! Appending to the file with group commit: one thread owns the file, and
//! every batch queued while it writes and syncs goes into its next write and
//! shares its next `fdatasync`.
//!
//! The hub sends an output batch as several messages (64 events each), and
//! the SDK hands each to [`crate::JsonlOutput`] on a task of its own, so a
//! batch of 1,000 events arrives as 16 appends at once. Syncing each of them
//! in turn cost 16 `fdatasync` calls, one after another, per 1,000 events;
//! synced together they cost one or two.

use std::fs::File;
use std::io::{self, Write as _};
use std::sync::mpsc;

use tokio::sync::oneshot;

/// One batch's lines, and where to say whether they are on disk.
struct Job {
    lines: Vec<u8>,
    done: oneshot::Sender<io::Result<()>>,
}

/// The handle to the appending thread; the thread ends when it is dropped.
#[derive(Debug)]
pub(crate) struct Appender {
    jobs: mpsc::Sender<Job>,
}

impl Appender {
    /// Starts the thread that appends to `file`, syncing each group of
    /// appends when `fsync` is set.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub(crate) fn start(file: File, fsync: bool) -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("jsonl-append".to_owned())
            .spawn(move || {
                run(&file, fsync, &queue);
            })?;
        Ok(Appender { jobs })
    }

    /// Appends `lines` (whole lines) and waits until they are written, and
    /// synced if `fsync` is set. On an error nothing of them stays in the
    /// file.
    pub(crate) async fn append(&self, lines: Vec<u8>) -> io::Result<()> {
        let (done, outcome) = oneshot::channel();
        self.jobs
            .send(Job { lines, done })
            .map_err(|_| io::Error::other("the appending thread has stopped"))?;
        outcome
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the appending thread has stopped")))
    }
}

/// The appending thread: takes the first job queued and every job queued
/// behind it, appends them as one group and answers each. Returns how many
/// groups it appended once every [`Appender`] is gone.
fn run(file: &File, fsync: bool, queue: &mpsc::Receiver<Job>) -> usize {
    let mut groups = 0;
    while let Ok(first) = queue.recv() {
        groups += 1;
        let mut group = vec![first];
        group.extend(queue.try_iter());
        let outcome = append_group(file, fsync, &group);
        for job in group {
            let answer = match &outcome {
                Ok(()) => Ok(()),
                Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
            };
            // The caller may have gone (its call was cancelled): its lines
            // are in the file either way.
            let _ = job.done.send(answer);
        }
    }
    groups
}

/// Writes every job's lines and syncs once; on an error truncates the file
/// back to its length before the group, so no partial line stays in it.
fn append_group(mut file: &File, fsync: bool, group: &[Job]) -> io::Result<()> {
    let length = file.metadata()?.len();
    let written = group
        .iter()
        .try_for_each(|job| file.write_all(&job.lines))
        .and_then(|()| if fsync { file.sync_data() } else { Ok(()) });
    if written.is_err() {
        let _ = file.set_len(length);
    }
    written
}

/// How far back from the end [`drop_torn_tail`] reads at a time.
const TAIL_CHUNK: u64 = 64 * 1024;

/// Cuts a partial last line off `file` (`path` opened for appending) and
/// returns how many bytes it cut. Only a regular file is looked at (a path
/// such as `/dev/stdout` is left alone).
///
/// A group's lines are acknowledged only once written whole (and synced),
/// so a file that does not end in a newline holds the start of a write that
/// a crash or a SIGKILL cut short: events never acknowledged, which the hub
/// delivers again. Left in place, the next append would glue a new line to
/// the partial one and make both unreadable.
pub(crate) fn drop_torn_tail(path: &std::path::Path, file: &File) -> io::Result<u64> {
    use std::os::unix::fs::FileExt as _;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(0);
    }
    let length = metadata.len();
    let reader = File::open(path)?;
    // Up to and with the last newline; 0 when there is none (the file
    // holds only a partial line).
    let mut keep = 0;
    let mut end = length;
    let mut chunk = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(TAIL_CHUNK);
        let size = usize::try_from(end - start).map_err(io::Error::other)?;
        chunk.resize(size, 0);
        reader.read_exact_at(&mut chunk, start)?;
        if let Some(newline) = chunk.iter().rposition(|&byte| byte == b'\n') {
            keep = start + newline as u64 + 1;
            break;
        }
        end = start;
    }
    if keep < length {
        file.set_len(keep)?;
        file.sync_all()?;
    }
    Ok(length - keep)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::fs::OpenOptions;

    use super::*;

    fn job(lines: &str) -> (Job, oneshot::Receiver<io::Result<()>>) {
        let (done, outcome) = oneshot::channel();
        let job = Job {
            lines: lines.as_bytes().to_vec(),
            done,
        };
        (job, outcome)
    }

    #[test]
    fn the_jobs_queued_together_are_appended_in_order_and_all_answered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "0\n").unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let (jobs, queue) = mpsc::channel();
        let mut outcomes = Vec::new();
        for lines in ["1\n2\n", "3\n", "4\n5\n"] {
            let (job, outcome) = job(lines);
            jobs.send(job).unwrap();
            outcomes.push(outcome);
        }
        drop(jobs);
        assert_eq!(run(&file, true, &queue), 1, "one write and one sync");
        for mut outcome in outcomes {
            outcome.try_recv().unwrap().unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n1\n2\n3\n4\n5\n"
        );
    }

    #[test]
    fn a_failed_group_leaves_nothing_of_itself_and_fails_every_job() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let Ok(file) = OpenOptions::new().append(true).open("/dev/full") else {
            return;
        };
        let (jobs, queue) = mpsc::channel();
        let (first, mut first_outcome) = job("1\n");
        let (second, mut second_outcome) = job("2\n");
        jobs.send(first).unwrap();
        jobs.send(second).unwrap();
        drop(jobs);
        assert_eq!(run(&file, false, &queue), 1);
        for outcome in [first_outcome.try_recv(), second_outcome.try_recv()] {
            let error = outcome.unwrap().unwrap_err();
            assert_eq!(error.raw_os_error(), None, "copied by kind and message");
            assert!(error.to_string().contains("space"), "{error}");
        }
    }

    #[tokio::test]
    async fn concurrent_appends_each_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let appender = std::sync::Arc::new(Appender::start(file, true).unwrap());
        let appends: Vec<_> = (0..16)
            .map(|batch| {
                let appender = appender.clone();
                tokio::spawn(async move {
                    let lines: String = (0..50).map(|line| format!("{batch} {line}\n")).collect();
                    appender.append(lines.into_bytes()).await
                })
            })
            .collect();
        for append in appends {
            append.await.unwrap().unwrap();
        }
        let written = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<(u32, u32)> = written
            .lines()
            .map(|line| {
                let (batch, index) = line.split_once(' ').unwrap();
                (batch.parse().unwrap(), index.parse().unwrap())
            })
            .collect();
        assert_eq!(lines.len(), 16 * 50);
        for run in lines.chunks(50) {
            let batch = run[0].0;
            let expected: Vec<(u32, u32)> = (0..50).map(|line| (batch, line)).collect();
            assert_eq!(run, expected, "a batch's lines are contiguous and in order");
        }
    }

    /// `text` in a new file, opened as `JsonlOutput::new` opens it.
    fn file_with(dir: &tempfile::TempDir, text: &[u8]) -> (std::path::PathBuf, File) {
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, text).unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        (path, file)
    }

    #[test]
    fn a_partial_last_line_is_cut_off_and_whole_lines_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for (text, kept, cut) in [
            (&b""[..], &b""[..], 0),
            (b"{\"a\":1}\n{\"b\":2}\n", b"{\"a\":1}\n{\"b\":2}\n", 0),
            (b"{\"a\":1}\n{\"b\":", b"{\"a\":1}\n", 5),
            (b"{\"b\":", b"", 5),
        ] {
            let (path, file) = file_with(&dir, text);
            assert_eq!(drop_torn_tail(&path, &file).unwrap(), cut);
            assert_eq!(std::fs::read(&path).unwrap(), kept);
        }
        // A partial line longer than one read from the end, and an append
        // after the cut starts a line of its own.
        let mut text = b"{\"a\":1}\n".to_vec();
        let partial = vec![b'x'; 3 * TAIL_CHUNK as usize + 17];
        text.extend_from_slice(&partial);
        let (path, file) = file_with(&dir, &text);
        assert_eq!(drop_torn_tail(&path, &file).unwrap(), partial.len() as u64);
        let group = [job("{\"c\":3}\n").0];
        append_group(&file, false, &group).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"c\":3}\n"
        );
    }
}
