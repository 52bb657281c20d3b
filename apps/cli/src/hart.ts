console.log("hart");
