"""The encrypted document vault: chunked client-side encryption, multipart uploads, grants."""
