//! The demo's user store: two users whose passwords can be changed while the server
//! runs. A real service checks a password hash (argon2, scrypt) in its own database;
//! keybound does not care how the user was authenticated.

use std::collections::HashMap;
use std::sync::Mutex;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The demo users and their initial passwords.
pub const DEMO_USERS: [(&str, &str, &str); 2] = [
    ("alice", "wonderland", "Alice Liddell"),
    ("bob", "builder", "Bob the Builder"),
];

/// Shortest accepted new password.
pub const MIN_PASSWORD_LEN: usize = 6;
/// Longest accepted password.
pub const MAX_PASSWORD_LEN: usize = 128;

/// In-memory users: passwords reset to [`DEMO_USERS`] when the server restarts.
#[derive(Debug)]
pub struct Users {
    passwords: Mutex<HashMap<String, Zeroizing<String>>>,
}

impl Default for Users {
    fn default() -> Self {
        Self::demo()
    }
}

/// Why a password change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChangeError {
    /// The current password is wrong.
    WrongPassword,
    /// The new password is too short, too long or the same as the old one.
    WeakPassword,
}

impl Users {
    /// The users of [`DEMO_USERS`].
    pub fn demo() -> Self {
        let passwords = DEMO_USERS
            .iter()
            .map(|(user, password, _)| ((*user).to_owned(), Zeroizing::new((*password).to_owned())))
            .collect();
        Self {
            passwords: Mutex::new(passwords),
        }
    }

    /// The display name of a demo user.
    pub fn display_name(user: &str) -> &str {
        DEMO_USERS
            .iter()
            .find(|(id, _, _)| *id == user)
            .map_or(user, |(_, _, name)| name)
    }

    /// Whether `password` is `user`'s password (compared in constant time; an unknown
    /// user costs the same comparison).
    pub fn check(&self, user: &str, password: &str) -> bool {
        let passwords = self
            .passwords
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (known, expected) = match passwords.get(user) {
            Some(expected) => (true, expected.as_bytes()),
            None => (false, "\u{0}unknown-user".as_bytes()),
        };
        let same: bool = expected.ct_eq(password.as_bytes()).into();
        known && same
    }

    /// Checks a password change without making it: the current password must be right,
    /// the new one 6 to 128 characters and different. (The demo then sets the password
    /// and only then revokes the other sessions.)
    pub fn check_change(
        &self,
        user: &str,
        current: &str,
        new: &str,
    ) -> Result<(), PasswordChangeError> {
        if !self.check(user, current) {
            return Err(PasswordChangeError::WrongPassword);
        }
        let length = new.chars().count();
        if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&length) || new == current {
            return Err(PasswordChangeError::WeakPassword);
        }
        Ok(())
    }

    /// Sets `user`'s password (after [`check_change`](Self::check_change) passed).
    pub fn set_password(&self, user: &str, new: &str) {
        let mut passwords = self
            .passwords
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        passwords.insert(user.to_owned(), Zeroizing::new(new.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_changes_passwords() {
        let users = Users::demo();
        assert!(users.check("alice", "wonderland"));
        assert!(!users.check("alice", "wonderlan"));
        assert!(!users.check("alice", "wonderland "));
        assert!(!users.check("carol", "wonderland"));
        assert_eq!(
            users.check_change("alice", "nope", "looking-glass"),
            Err(PasswordChangeError::WrongPassword)
        );
        assert_eq!(
            users.check_change("alice", "wonderland", "short"),
            Err(PasswordChangeError::WeakPassword)
        );
        assert_eq!(
            users.check_change("alice", "wonderland", "wonderland"),
            Err(PasswordChangeError::WeakPassword)
        );
        users
            .check_change("alice", "wonderland", "looking-glass")
            .unwrap();
        assert!(users.check("alice", "wonderland"));
        users.set_password("alice", "looking-glass");
        assert!(!users.check("alice", "wonderland"));
        assert!(users.check("alice", "looking-glass"));
        assert!(users.check("bob", "builder"));
    }
}
