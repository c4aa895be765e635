import Service
print("dsch \(ServiceVersion.string)")
