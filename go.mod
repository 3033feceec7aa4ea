module github.com/offsetdb/offsetdb

go 1.26.8

require (
	github.com/go-delve/delve v1.27.2
	github.com/stretchr/testify v1.12.1
	golang.org/x/arch v0.32.0
	golang.org/x/mod v0.42.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
