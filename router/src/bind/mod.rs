//! The bind stage: a destination's live bound tree, from the binding cache
//! (one binding per destination, shared by its requests, bounded work),
//! and the union branch and alternative a request goes to.

pub mod cache;
