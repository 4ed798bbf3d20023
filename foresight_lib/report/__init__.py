"""The go/no-go report: summary by point, Phase 1 decision, figures and markdown."""
