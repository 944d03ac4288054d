module github.com/steadyws/steadyws

go 1.26.8

require github.com/gobwas/ws v1.5.0

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/jpillora/backoff v1.1.0 // indirect
)
