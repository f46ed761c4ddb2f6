//! The router: names each request, binds the name and forwards it.
