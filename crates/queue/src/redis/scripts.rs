//! The Lua scripts, each prefixed with the shared library (and the claim and commit scripts
//! with the claiming library).

use fred::types::scripts::Script;

macro_rules! claiming {
    ($file:literal) => {
        concat!(
            include_str!("../../lua/lib.lua"),
            "\n",
            include_str!("../../lua/claimlib.lua"),
            "\n",
            include_str!(concat!("../../lua/", $file))
        )
    };
}

macro_rules! script {
    ($file:literal) => {
        concat!(
            include_str!("../../lua/lib.lua"),
            "\n",
            include_str!(concat!("../../lua/", $file))
        )
    };
}

/// The loaded scripts.
pub(super) struct Scripts {
    pub(super) start: Script,
    pub(super) claim: Script,
    pub(super) commit: Script,
    pub(super) renew: Script,
    pub(super) release: Script,
    pub(super) reclaim: Script,
    pub(super) revive: Script,
    pub(super) purge: Script,
    pub(super) define: Script,
    pub(super) control: Script,
    pub(super) limits: Script,
    pub(super) bind: Script,
    pub(super) workers: Script,
    pub(super) unreserve: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            start: Script::from_lua(script!("start.lua")),
            claim: Script::from_lua(claiming!("claim.lua")),
            commit: Script::from_lua(claiming!("commit.lua")),
            renew: Script::from_lua(script!("renew.lua")),
            release: Script::from_lua(script!("release.lua")),
            reclaim: Script::from_lua(script!("reclaim.lua")),
            revive: Script::from_lua(script!("revive.lua")),
            purge: Script::from_lua(script!("purge.lua")),
            control: Script::from_lua(script!("control.lua")),
            limits: Script::from_lua(script!("limits.lua")),
            bind: Script::from_lua(include_str!("../../lua/bind.lua")),
            workers: Script::from_lua(script!("workers.lua")),
            unreserve: Script::from_lua(include_str!("../../lua/unreserve.lua")),
            define: Script::from_lua(concat!(include_str!("../../lua/define.lua"))),
        }
    }

    pub(super) fn all(&self) -> [&Script; 14] {
        [
            &self.unreserve,
            &self.workers,
            &self.bind,
            &self.limits,
            &self.control,
            &self.define,
            &self.revive,
            &self.purge,
            &self.start,
            &self.claim,
            &self.commit,
            &self.renew,
            &self.release,
            &self.reclaim,
        ]
    }
}
