//! Sluice
