//! Who may talk to the socket: root, the daemon's own user, and members of
//! the socket's group, judged from SO_PEERCRED. The file mode (0660) says
//! the same; checking again here keeps a mistaken mode or a socket passed
//! in by systemd from opening the queue to everyone.

use std::ffi::{CStr, CString};

use super::cmd::Peer;

#[derive(Debug, Clone)]
pub struct Access {
    own_uid: u32,
    group: u32,
}

impl Access {
    /// `group` is the socket's group (CRONQ_SOCKET_GROUP, else the daemon's).
    pub fn new(group: Option<u32>) -> Access {
        // SAFETY: getuid and getgid cannot fail.
        let (own_uid, own_gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Access {
            own_uid,
            group: group.unwrap_or(own_gid),
        }
    }

    pub fn allows(&self, peer: &Peer) -> bool {
        self.is_privileged(peer) || peer.gid == self.group || member_of(peer.uid, self.group)
    }

    /// Root or the daemon's own user: always allowed, and given a reserve
    /// of connections beyond the limits (`slots`).
    pub fn is_privileged(&self, peer: &Peer) -> bool {
        peer.uid == 0 || peer.uid == self.own_uid
    }
}

/// Looks a group up by name or number.
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse() {
        return Some(gid);
    }
    let c = CString::new(name).ok()?;
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the use of group.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(group.gr_gid)
}

/// The name of group `gid`, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the use of group.
    let rc = unsafe { libc::getgrgid_r(gid, &mut group, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: gr_name points into buf, a NUL-terminated name.
    let name: &CStr = unsafe { CStr::from_ptr(group.gr_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Whether `uid`'s user has `gid` among its supplementary groups.
fn member_of(uid: u32, gid: u32) -> bool {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as above.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return false;
    }
    // SAFETY: pw_name points into buf, a NUL-terminated name.
    let name: &CStr = unsafe { CStr::from_ptr(pw.pw_name) };
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: groups holds n entries.
    let rc = unsafe { libc::getgrouplist(name.as_ptr(), pw.pw_gid, groups.as_mut_ptr(), &mut n) };
    if rc < 0 {
        return false;
    }
    groups.truncate(n.max(0) as usize);
    groups.contains(&gid)
}
