module github.com/mtlspop/mtlspop/interop

go 1.26

require (
	github.com/AzureAD/microsoft-authentication-library-for-go v1.10.1
	github.com/mtlspop/mtlspop v0.0.0
)

require (
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/google/uuid v1.3.0 // indirect
	github.com/kylelemons/godebug v1.1.0 // indirect
	golang.org/x/sync v0.10.0 // indirect
	golang.org/x/sys v0.29.0 // indirect
)

replace github.com/mtlspop/mtlspop => ../
