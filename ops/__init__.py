"""Team operations around the tfbox program: which stacks are machines, PR previews, the fleet command.

Plain Python used by scripts/ and the workflows; the pure parts are unit-tested without Pulumi.
"""
