module stripesyncgen

go 1.26
