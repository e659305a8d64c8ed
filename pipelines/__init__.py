"""Apache Beam pipelines composing `filters/`, with their readers, sinks, options and the CLI."""
